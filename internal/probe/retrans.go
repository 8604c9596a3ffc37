package probe

import (
	"fmt"

	"github.com/tcplens/tcplens/internal/bpfobj"
)

// RetransEvent is one ring buffer record of bpf/retrans.c.
type RetransEvent = bpfobj.RetransRetransEvent

// LoadRetrans loads bpf/retrans.c and attaches it to tcp:tcp_retransmit_skb
// and tcp:tcp_retransmit_synack, and to sock:inet_sock_set_state for each
// socket's total_retrans baseline at its birth.
func LoadRetrans(opts SockTracerOptions) (*SockTracer, error) {
	spec, err := bpfobj.LoadRetrans()
	if err != nil {
		return nil, fmt.Errorf("read embedded retrans object: %w", err)
	}
	return loadSockTracer("retrans", spec, opts, nil, []tracepointProgram{
		{bpfobj.RetransProgRetransmitSkb, TPRetransmitSKB},
		{bpfobj.RetransProgRetransmitSynack, TPRetransmitSynack},
		{bpfobj.RetransProgSocketState, TPSetState},
	})
}
