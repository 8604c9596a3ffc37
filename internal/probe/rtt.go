package probe

import (
	"fmt"
	"time"

	"github.com/cilium/ebpf"

	"github.com/tcplens/tcplens/internal/bpfobj"
)

// RTTEvent is one ring buffer record of bpf/rtt.c.
type RTTEvent = bpfobj.RttRttEvent

// DefaultRTTSample is --sample's default.
const DefaultRTTSample = 100 * time.Millisecond

// LoadRTT loads bpf/rtt.c with at most one periodic record per connection
// per sample (plus one per cwnd or ssthresh change) and attaches it to the
// raw tracepoint tcp_probe, and tcp:tcp_destroy_sock to forget freed
// sockets.
func LoadRTT(opts SockTracerOptions, sample time.Duration) (*SockTracer, error) {
	if sample <= 0 {
		return nil, fmt.Errorf("rtt: sample period must be positive, not %s", sample)
	}
	spec, err := bpfobj.LoadRtt()
	if err != nil {
		return nil, fmt.Errorf("read embedded rtt object: %w", err)
	}
	configure := func(spec *ebpf.CollectionSpec) error {
		v, ok := spec.Variables["sample_ns"]
		if !ok {
			return fmt.Errorf("object has no sample_ns constant")
		}
		if err := v.Set(uint64(sample.Nanoseconds())); err != nil {
			return fmt.Errorf("set sample period: %w", err)
		}
		return nil
	}
	return loadSockTracer("rtt", spec, opts, configure, []tracepointProgram{
		{bpfobj.RttProgTcpProbe, TPTCPProbe},
		{bpfobj.RttProgTcpDestroySock, TPDestroySock},
	})
}
