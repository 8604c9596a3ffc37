package integration

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/tcplens/tcplens/internal/events"
	"github.com/tcplens/tcplens/internal/probe"
	"github.com/tcplens/tcplens/internal/testnet"
	"github.com/tcplens/tcplens/internal/testutil"
)

// BenchmarkSockTraceKernelCost measures what the resets and drops programs
// cost the kernel per event, from the kernel's own BPF statistics
// (BPF_ENABLE_STATS, as kernel.bpf_stats_enabled=1): each iteration is one
// connection to a closed port, which fires tcp_send_reset,
// tcp_receive_reset and kfree_skb (NO_SOCKET). kfree_skb also runs for
// every other packet the machine frees with a drop reason, all of them
// counted in its average. The ring buffers are drained as tcplens does.
func BenchmarkSockTraceKernelCost(b *testing.B) {
	testutil.RequirePrivileged(b)
	stats, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	if err != nil {
		b.Skipf("BPF run-time statistics: %v", err)
	}
	defer stats.Close()
	p := testnet.NewPair(b)
	closed := closedPort(b, p.B, testnet.IPv4)
	filter := probe.SockTracerOptions{Filter: probe.SockFilter{Port: closed.Port()}}
	resets, err := probe.LoadResets(filter)
	if err != nil {
		b.Fatal(err)
	}
	defer resets.Close()
	reasons, err := probe.DropReasons()
	if err != nil {
		b.Fatal(err)
	}
	drops, err := probe.LoadDrops(filter, probe.DropsConfig{}, reasons)
	if err != nil {
		b.Fatal(err)
	}
	defer drops.Close()
	for _, t := range []*probe.SockTracer{resets, drops} {
		rd, err := events.NewReader(t.Events, t.Lost)
		if err != nil {
			b.Fatal(err)
		}
		defer rd.Close()
		go func() {
			for {
				if _, err := rd.Next(); errors.Is(err, events.ErrClosed) {
					return
				}
			}
		}()
	}
	before := map[string]ebpf.ProgramStats{}
	progs := map[string]*ebpf.Program{}
	for name, prog := range resets.Programs {
		progs[name] = prog
	}
	for name, prog := range drops.Programs {
		progs[name] = prog
	}
	for name, prog := range progs {
		s, err := prog.Stats()
		if err != nil {
			b.Fatal(err)
		}
		before[name] = *s
	}
	b.ResetTimer()
	err = p.A.Do(func() error {
		d := net.Dialer{Timeout: time.Second}
		for i := 0; i < b.N; i++ {
			if c, err := d.Dial("tcp", closed.String()); err == nil {
				c.Close()
			}
		}
		return nil
	})
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	for name, prog := range progs {
		s, err := prog.Stats()
		if err != nil {
			b.Fatal(err)
		}
		runs := s.RunCount - before[name].RunCount
		if runs == 0 {
			continue
		}
		ns := float64(s.Runtime-before[name].Runtime) / float64(runs)
		b.ReportMetric(ns, name+"-ns/run")
		b.Logf("%s: %d runs, %.0f ns each", name, runs, ns)
	}
}
