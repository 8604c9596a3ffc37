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

// DefaultRTTCwndChangePct is --cwnd-change's default: a cwnd move of 25%
// makes a record, smaller ones wait for the next periodic one.
const DefaultRTTCwndChangePct = 25

// RTTConfig is what bpf/rtt.c is told before it is loaded.
type RTTConfig struct {
	// Sample is the least time between two periodic records of a connection.
	Sample time.Duration
	// CwndChangePct: a cwnd change makes a record once cwnd moved by at
	// least this many percent since the last record; 0 records every change.
	CwndChangePct uint32
}

// LoadRTT loads bpf/rtt.c with at most one periodic record per connection
// per sample (plus one per cwnd or ssthresh change) and attaches it to the
// raw tracepoint tcp_probe, and tcp:tcp_destroy_sock to forget freed
// sockets.
func LoadRTT(opts SockTracerOptions, cfg RTTConfig) (*SockTracer, error) {
	sample := cfg.Sample
	if sample <= 0 {
		return nil, fmt.Errorf("rtt: sample period must be positive, not %s", sample)
	}
	if cfg.CwndChangePct > 100 {
		return nil, fmt.Errorf("rtt: cwnd change threshold is 0 to 100 percent, not %d", cfg.CwndChangePct)
	}
	configure := func(spec *ebpf.CollectionSpec) error {
		v, ok := spec.Variables["sample_ns"]
		if !ok {
			return fmt.Errorf("object has no sample_ns constant")
		}
		if err := v.Set(uint64(sample.Nanoseconds())); err != nil {
			return fmt.Errorf("set sample period: %w", err)
		}
		v, ok = spec.Variables["cwnd_change_pct"]
		if !ok {
			return fmt.Errorf("object has no cwnd_change_pct constant")
		}
		if err := v.Set(cfg.CwndChangePct); err != nil {
			return fmt.Errorf("set cwnd change threshold: %w", err)
		}
		return nil
	}
	return RTTObject.load(opts, configure)
}
