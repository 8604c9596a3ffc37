package integration

// What a SYN of a flood costs in the packet path, `syn` against `flags`,
// from the kernel's own accounting (bpf_stats: run_time_ns / run_cnt of
// each tcx program). Both commands run at once on the same veth, so every
// SYN of the flood passes through both programs, and their order on the
// hook alternates between floods:
//
//	sudo go test -run '^$' -bench SynFloodCost -benchtime 800000x ./test/integration/
//
// Each flood has two phases, measured apart. fill: the first 16384 SYNs,
// each a new 4-tuple that `syn` inserts into its empty tuple table (the
// default --max-tuples); this happens once per --interval, a fixed cost.
// flood: the SYNs after that, while the table is full: what each further
// SYN of a flood costs. `syn` runs with --interval 1h so that the table
// stays full during the flood phase.
//
// Metrics: flags-ns/syn and syn-ns/syn are the programs' mean run time per
// SYN in the flood phase, x-flags their ratio; fill-flags-ns/syn and
// fill-syn-ns/syn the same for the fill phase; syn/s the rate the sender
// achieved in the flood phase (the receiver's whole TCP path runs in the
// sender's write, so it is what A processed); rss-kib-before/after is
// tcplens syn's resident set when attached and after the flood;
// untracked-% the share of all SYNs `syn` counted as untracked.

import (
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/tcplens/tcplens/internal/testnet"
	"github.com/tcplens/tcplens/internal/testutil"
)

// floodChunks is how many floods make one benchmark run; the order of the
// two programs on the hook alternates between them.
const floodChunks = 4

// fillSYNs is the fill phase: the default --max-tuples.
const fillSYNs = 16384

func BenchmarkSynFloodCost(b *testing.B) {
	testutil.RequirePrivileged(b)
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Fatalf("enable bpf_stats: %v", err)
	}
	defer stats.Close()
	for _, pattern := range []struct {
		name    string
		sources int
	}{
		{"one-source", 1},            // one source, a new port per SYN
		{"spoofed", floodMaxSources}, // a new source (and tuple) per SYN
		{"50k-sources", 50_000},      // the integration test's flood
	} {
		b.Run(pattern.name, func(b *testing.B) {
			p := testnet.NewPair(b)
			prepareFloodTarget(b, p.A)
			var total floodCost
			var untracked, syns float64
			for chunk := 0; chunk < floodChunks; chunk++ {
				n := b.N / floodChunks
				if chunk == floodChunks-1 {
					n = b.N - n*(floodChunks-1)
				}
				if n == 0 {
					continue
				}
				m := measureFlood(b, p, pattern.sources, n, chunk%2 == 1)
				total.add(m)
				sum := m.syn.Summary(b, "")
				untracked += float64(sum.Uint(b, "untracked"))
				syns += float64(sum.Uint(b, "syn"))
				if chunk == 0 {
					total.rss[0] = m.rss[0]
				}
				total.rss[1] = max(total.rss[1], m.rss[1])
			}
			per := func(ns float64, n int) float64 { return ns / float64(max(n, 1)) }
			b.ReportMetric(per(total.flood.flags, total.flood.sent), "flags-ns/syn")
			b.ReportMetric(per(total.flood.syn, total.flood.sent), "syn-ns/syn")
			b.ReportMetric(total.flood.syn/total.flood.flags, "x-flags")
			b.ReportMetric(per(total.fill.flags, total.fill.sent), "fill-flags-ns/syn")
			b.ReportMetric(per(total.fill.syn, total.fill.sent), "fill-syn-ns/syn")
			b.ReportMetric(float64(total.flood.sent)/total.flood.took.Seconds(), "syn/s")
			b.ReportMetric(float64(total.rss[0]), "rss-kib-before")
			b.ReportMetric(float64(total.rss[1]), "rss-kib-after")
			b.ReportMetric(100*untracked/max(syns, 1), "untracked-%")
			b.ReportMetric(0, "ns/op") // wall time of the whole setup; meaningless
		})
	}
}

// phaseCost is one phase's total run time of each program (ns), and the
// SYNs sent in it.
type phaseCost struct {
	flags, syn float64
	sent       int
	took       time.Duration
}

type floodCost struct {
	fill, flood phaseCost
	syn         testnet.Result // tcplens syn's output
	rss         [2]uint64      // tcplens syn's RSS in KiB, attached and after the flood
}

func (c *floodCost) add(o floodCost) {
	for _, p := range []struct{ into, from *phaseCost }{{&c.fill, &o.fill}, {&c.flood, &o.flood}} {
		p.into.flags += p.from.flags
		p.into.syn += p.from.syn
		p.into.sent += p.from.sent
		p.into.took += p.from.took
	}
}

// measureFlood runs `tcplens flags` and `tcplens syn` together on A's
// veth (tcx, default sizes; flags first on the hook unless synFirst), sends
// fillSYNs and then n SYNs from B, every one a new 4-tuple, and reads each
// program's run time in both phases from bpf_stats.
func measureFlood(b *testing.B, p *testnet.Pair, sources, n int, synFirst bool) floodCost {
	b.Helper()
	var c floodCost
	order := []string{"flags", "syn"}
	if synFirst {
		order = []string{"syn", "flags"}
	}
	procs := map[string]*testnet.Process{}
	progs := map[string]*ebpf.Program{}
	known := map[ebpf.ProgramID]bool{}
	for _, cmd := range order {
		procs[cmd] = p.A.StartTcplens(b, cmd, "-i", p.A.Link, "-o", "json", "--hook", "tc", "--interval", "1h")
		for _, id := range p.A.Attachments(b).TCXIngress {
			if known[id] {
				continue
			}
			known[id] = true
			prog, err := ebpf.NewProgramFromID(id)
			if err != nil {
				b.Fatalf("open program %d: %v", id, err)
			}
			defer prog.Close()
			progs[cmd] = prog
		}
		if progs[cmd] == nil {
			b.Fatalf("no new tcx program on %s for tcplens %s", p.A.Link, cmd)
		}
	}
	stats := func() map[string]*ebpf.ProgramStats {
		out := map[string]*ebpf.ProgramStats{}
		for cmd, prog := range progs {
			s, err := prog.Stats()
			if err != nil {
				b.Fatalf("stats of %s's program: %v", cmd, err)
			}
			out[cmd] = s
		}
		return out
	}
	phase := func(into *phaseCost, f flood) {
		before := stats()
		var err error
		if into.sent, into.took, err = f.send(p.B, p.A); err != nil {
			b.Fatalf("flood: %v", err)
		}
		waitSettled(b, p.A)
		after := stats()
		for cmd, s := range after {
			runs := s.RunCount - before[cmd].RunCount
			if runs < uint64(into.sent) {
				b.Fatalf("%s: the program ran %d times for %d SYNs", cmd, runs, into.sent)
			}
			ns := float64(s.Runtime-before[cmd].Runtime) * float64(into.sent) / float64(runs)
			if ns == 0 {
				b.Fatal("bpf_stats shows no run time: stats not enabled?")
			}
			if cmd == "flags" {
				into.flags = ns
			} else {
				into.syn = ns
			}
		}
	}
	c.rss[0] = rssKiB(b, procs["syn"].PID())
	f := flood{syns: fillSYNs, sources: min(sources, fillSYNs+n), dst: p.A.IPv4.AsSlice(), dport: floodDport, maxTime: time.Minute}
	phase(&c.fill, f)
	f.first, f.syns = fillSYNs, n
	phase(&c.flood, f)
	c.rss[1] = rssKiB(b, procs["syn"].PID())
	for _, cmd := range order {
		res := procs[cmd].Stop()
		if res.ExitCode != 0 {
			b.Fatalf("tcplens %s exited with %d; stderr: %s", cmd, res.ExitCode, res.Stderr)
		}
		if cmd == "syn" {
			c.syn = res
		}
	}
	return c
}
