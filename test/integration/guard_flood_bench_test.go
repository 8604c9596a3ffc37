package integration

// What a SYN of a spoofed flood costs `guard`, against `flags`, from the
// kernel's own accounting (bpf_stats: run_time_ns / run_cnt of each tcx
// program), both attached to the same veth in the same run. flags is
// attached first: guard drops, and a dropped packet runs no later program.
//
//	sudo go test -run '^$' -bench GuardFloodCost -benchtime 400000x ./test/integration/
//
// guard runs with per-source and global buckets and the scan rule on, so
// every SYN of an unknown source takes the whole unknown-source path
// (failed per-source lookup, global bucket, and an admission attempt for
// the few that pass).

import (
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/tcplens/tcplens/internal/testnet"
	"github.com/tcplens/tcplens/internal/testutil"
)

func BenchmarkGuardFloodCost(b *testing.B) {
	testutil.RequirePrivileged(b)
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Fatalf("enable bpf_stats: %v", err)
	}
	defer stats.Close()
	p := testnet.NewPair(b)
	prepareFloodTarget(b, p.A)
	progs := map[string]*ebpf.Program{}
	procs := map[string]*testnet.Process{}
	known := map[ebpf.ProgramID]bool{}
	for _, args := range [][]string{
		{"flags"},
		{"guard", "--syn-rate", "20", "--syn-burst", "40", "--syn-rate-global", "2000", "--scan-ports", "50"},
	} {
		cmd := args[0]
		procs[cmd] = p.A.StartTcplens(b, append(append([]string(nil), args...), "-i", p.A.Link, "-o", "json", "--hook", "tc", "--interval", "1h")...)
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
			b.Fatalf("no new tcx program for tcplens %s", cmd)
		}
	}
	read := func() map[string]*ebpf.ProgramStats {
		out := map[string]*ebpf.ProgramStats{}
		for cmd, prog := range progs {
			s, err := prog.Stats()
			if err != nil {
				b.Fatal(err)
			}
			out[cmd] = s
		}
		return out
	}
	before := read()
	f := flood{syns: b.N, sources: floodMaxSources, dst: p.A.IPv4.AsSlice(), dport: floodDport, maxTime: time.Minute}
	sent, took, err := f.send(p.B, p.A)
	if err != nil {
		b.Fatal(err)
	}
	waitSettled(b, p.A)
	after := read()
	ns := map[string]float64{}
	for cmd, s := range after {
		runs := s.RunCount - before[cmd].RunCount
		if runs < uint64(sent) {
			b.Fatalf("%s ran %d times for %d SYNs", cmd, runs, sent)
		}
		ns[cmd] = float64(s.Runtime-before[cmd].Runtime) / float64(runs)
	}
	for _, cmd := range []string{"guard", "flags"} {
		if res := procs[cmd].Stop(); res.ExitCode != 0 {
			b.Fatalf("tcplens %s exited %d: %s", cmd, res.ExitCode, res.Stderr)
		} else if cmd == "guard" {
			sum := res.Summary(b, "")
			b.ReportMetric(float64(sum.Uint(b, "matched.syn_rate_global")), "global-drops")
			b.ReportMetric(float64(sum.Uint(b, "sources_admitted")), "admitted")
		}
	}
	b.ReportMetric(ns["flags"], "flags-ns/syn")
	b.ReportMetric(ns["guard"], "guard-ns/syn")
	b.ReportMetric(ns["guard"]/ns["flags"], "x-flags")
	b.ReportMetric(float64(sent)/took.Seconds(), "syn/s")
	b.ReportMetric(0, "ns/op")
}
