package integration

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/tcplens/tcplens/internal/events"
	"github.com/tcplens/tcplens/internal/probe"
	"github.com/tcplens/tcplens/internal/testnet"
	"github.com/tcplens/tcplens/internal/testutil"
)

// The benchmarks here measure what the socket-path programs cost the
// kernel per run, from the kernel's own BPF statistics (BPF_ENABLE_STATS,
// as kernel.bpf_stats_enabled=1: run_time_ns / run_cnt). Every object is
// read as tcplens reads it: a reader per ring buffer, polled with a
// deadline of at most 100 ms like cli's streamLoop. BENCHMARKS.md
// ("Socket path") has the numbers and the commands.

// sockPathCost is a set of attached socket-path objects and the run-time
// statistics of their programs when the measurement started.
type sockPathCost struct {
	progs  map[string]*ebpf.Program
	before map[string]ebpf.ProgramStats
	events map[string]*atomic.Int64 // records read per object
}

// startSockPathCost enables BPF run-time statistics and attaches the named
// objects (states, rtt, retrans, resets, drops) filtered to port (0: any).
func startSockPathCost(b *testing.B, port uint16, objects ...string) *sockPathCost {
	b.Helper()
	testutil.RequirePrivileged(b)
	stats, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	if err != nil {
		testutil.SkipUnlessRequired(b, fmt.Sprintf("BPF run-time statistics: %v", err))
	}
	b.Cleanup(func() { stats.Close() })
	var opts probe.SockTracerOptions
	if port != 0 {
		opts.Filter.Ports = []uint16{port}
	}
	c := &sockPathCost{progs: map[string]*ebpf.Program{}, events: map[string]*atomic.Int64{}}
	for _, obj := range objects {
		var t *probe.SockTracer
		switch obj {
		case "states":
			t, err = probe.LoadStates(opts)
		case "rtt":
			t, err = probe.LoadRTT(opts, probe.RTTConfig{Sample: probe.DefaultRTTSample})
		case "retrans":
			t, err = probe.LoadRetrans(opts)
		case "resets":
			t, err = probe.LoadResets(opts)
		case "drops":
			var reasons *probe.EnumNames
			var d *probe.Drops
			if reasons, err = probe.DropReasons(); err == nil {
				if d, err = probe.LoadDrops(opts, probe.DropsConfig{}, reasons); err == nil {
					t = d.SockTracer
				}
			}
		default:
			err = fmt.Errorf("no object %q", obj)
		}
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { t.Close() })
		rd, err := events.NewReader(t.Events, t.Lost)
		if err != nil {
			b.Fatal(err)
		}
		n := new(atomic.Int64)
		c.events[obj] = n
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				rd.SetDeadline(time.Now().Add(100 * time.Millisecond))
				_, err := rd.Next()
				switch {
				case err == nil:
					n.Add(1)
				case errors.Is(err, os.ErrDeadlineExceeded):
				default:
					return // closed
				}
			}
		}()
		b.Cleanup(func() { rd.Close(); <-done })
		for name, prog := range t.Programs {
			c.progs[name] = prog
		}
	}
	return c
}

// snapshot remembers the programs' statistics: costs are reported from here.
func (c *sockPathCost) snapshot(b *testing.B) {
	b.Helper()
	c.before = map[string]ebpf.ProgramStats{}
	for name, prog := range c.progs {
		s, err := prog.Stats()
		if err != nil {
			b.Fatal(err)
		}
		c.before[name] = *s
	}
}

// report adds name-ns/run (kernel time per program run) and name-runs/op
// for every program that ran since snapshot.
func (c *sockPathCost) report(b *testing.B) {
	b.Helper()
	names := make([]string, 0, len(c.progs))
	for name := range c.progs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		s, err := c.progs[name].Stats()
		if err != nil {
			b.Fatal(err)
		}
		runs := s.RunCount - c.before[name].RunCount
		if runs == 0 {
			continue
		}
		ns := float64(s.Runtime-c.before[name].Runtime) / float64(runs)
		b.ReportMetric(ns, name+"-ns/run")
		b.ReportMetric(float64(runs)/float64(b.N), name+"-runs/op")
		b.Logf("%s: %d runs, %.0f ns each", name, runs, ns)
	}
}

// BenchmarkSockTraceKernelCost measures the resets and drops programs: each
// iteration is one connection to a closed port, which fires
// tcp_send_reset, tcp_receive_reset and kfree_skb (NO_SOCKET). kfree_skb
// also runs for every other packet the machine frees with a drop reason,
// all of them counted in its average.
func BenchmarkSockTraceKernelCost(b *testing.B) {
	testutil.RequirePrivileged(b)
	p := testnet.NewPair(b)
	closed := closedPort(b, p.B, testnet.IPv4)
	c := startSockPathCost(b, closed.Port(), "resets", "drops")
	c.snapshot(b)
	b.ResetTimer()
	err := p.A.Do(func() error {
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
	c.report(b)
}

// BenchmarkSockPathBulkKernelCost attaches every socket-path object
// (filtered to the server's port) and sends 16 MiB over one new IPv4
// connection per iteration: tcp_probe runs for every segment the two ends
// receive, inet_sock_set_state and sock_{send,recv}_length per connection
// and per send and receive call.
func BenchmarkSockPathBulkKernelCost(b *testing.B) {
	testutil.RequirePrivileged(b)
	p := testnet.NewPair(b)
	srv := p.B.Listen(b, testnet.IPv4, 0)
	c := startSockPathCost(b, srv.Addr.Port(), "states", "rtt", "retrans", "resets", "drops")
	c.snapshot(b)
	b.SetBytes(16 << 20)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.A.Bulk(b, srv.Addr, 16<<20, 10*time.Second)
	}
	b.StopTimer()
	c.report(b)
	if n := c.events["rtt"].Load(); n > 0 {
		b.ReportMetric(float64(n)/float64(b.N), "rtt-records/op")
	}
}

// BenchmarkSockPathRetransKernelCost measures the retrans programs: each
// iteration streams for about a second over one IPv4 connection and takes
// the receiver's link down for 200 ms in the middle, as the retrans
// integration test does, so the sender retransmits.
func BenchmarkSockPathRetransKernelCost(b *testing.B) {
	testutil.RequirePrivileged(b)
	p := testnet.NewPair(b)
	srv := p.B.Listen(b, testnet.IPv4, 0)
	c := startSockPathCost(b, srv.Addr.Port(), "retrans")
	c.snapshot(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		conn, err := p.A.Dial(srv.Addr, 5*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		stop := make(chan struct{})
		done := make(chan error, 1)
		go func() { done <- sendUntil(conn, stop, 5*time.Second) }()
		time.Sleep(300 * time.Millisecond)
		p.B.FlapLink(b, 200*time.Millisecond)
		time.Sleep(500 * time.Millisecond)
		close(stop)
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		conn.Close()
	}
	b.StopTimer()
	c.report(b)
}
