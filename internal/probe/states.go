package probe

import (
	"github.com/tcplens/tcplens/internal/bpfobj"
)

// StateEvent is one ring buffer record of bpf/states.c.
type StateEvent = bpfobj.StatesStateEvent

// LoadStates loads bpf/states.c and attaches it to sock:inet_sock_set_state
// (transitions and lifetimes), tcp:tcp_destroy_sock (forgets freed
// sockets), and, where the kernel has them (6.3+),
// sock:sock_send_length/sock_recv_length (the owning process of sockets it
// did not see connect). Without them, SockTracer.Without names them and
// accepted connections show no owner.
func LoadStates(opts SockTracerOptions) (*SockTracer, error) {
	return StatesObject.load(opts, nil)
}
