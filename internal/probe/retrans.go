package probe

import (
	"github.com/tcplens/tcplens/internal/bpfobj"
)

// RetransEvent is one ring buffer record of bpf/retrans.c.
type RetransEvent = bpfobj.RetransRetransEvent

// LoadRetrans loads bpf/retrans.c and attaches it to tcp:tcp_retransmit_skb
// and tcp:tcp_retransmit_synack, and to sock:inet_sock_set_state for each
// socket's total_retrans baseline at its birth.
func LoadRetrans(opts SockTracerOptions) (*SockTracer, error) {
	return RetransObject.load(opts, nil)
}
