package probe

// Per-packet cost of the egress entry point against the empty TC program
// and the TC ingress entry point, all three in alternating chunks of the
// same run, as BenchmarkPacketPath does for ingress:
//
//	go test -run '^$' -bench PacketPathEgress -count 5 ./internal/probe/
//
// Metrics: ns/pkt (egress), ingress-ns/pkt, empty-ns/pkt, x-empty (egress
// over empty) and x-ingress (egress over ingress).

import (
	"fmt"
	"testing"
	"time"

	"github.com/cilium/ebpf"
)

// checkEgressPath makes sure the frame is parsed as TCP by the egress
// program and counted on the egress side, so that a regression cannot turn
// into a fast early exit.
func checkEgressPath(b *testing.B, bp *benchPrograms, frame []byte) {
	b.Helper()
	before, err := bp.pp.DirCounters(0, DirOut)
	if err != nil {
		b.Fatal(err)
	}
	ret, _, err := bp.pp.EgressProgram(0).Test(frame)
	if err != nil {
		b.Fatalf("run egress: %v", err)
	}
	after, err := bp.pp.DirCounters(0, DirOut)
	if err != nil {
		b.Fatal(err)
	}
	if ret != tcUnspec || after.TcpPackets != before.TcpPackets+1 {
		b.Fatalf("egress returned %d and counted %d TCP packets, want TC_ACT_UNSPEC and 1", ret, after.TcpPackets-before.TcpPackets)
	}
}

func BenchmarkPacketPathEgress(b *testing.B) {
	bp := loadBenchPrograms(b)
	lens := bp.pp.EgressProgram(0)
	for _, fam := range []struct {
		name string
		v6   bool
	}{{"ipv4", false}, {"ipv6", true}} {
		for _, kind := range []struct {
			name string
			syn  bool
		}{{"ack", false}, {"syn", true}} {
			b.Run(fmt.Sprintf("tc-egress/%s/%s", fam.name, kind.name), func(b *testing.B) {
				frames := benchFrames(b, fam.v6, kind.syn, 1)
				checkEgressPath(b, bp, frames[0])
				benchThree(b, bp.emptyTC, bp.pp.Program(0, HookTC), lens, frames[0])
			})
		}
	}
}

// benchThree runs b.N packets through each of empty, ingress and egress,
// alternating chunks of benchChunk packets.
func benchThree(b *testing.B, empty, ingress, egress *ebpf.Program, frame []byte) {
	progs := []*ebpf.Program{empty, ingress, egress}
	ns := make([]float64, len(progs))
	b.ResetTimer()
	for done := 0; done < b.N; {
		r := min(benchChunk, b.N-done)
		for i, p := range progs {
			_, d, err := p.Benchmark(frame, r, nil)
			if err != nil {
				b.Fatalf("run program %d: %v", i, err)
			}
			ns[i] += float64(d/time.Nanosecond) * float64(r)
		}
		done += r
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(ns[2]/n, "ns/pkt")
	b.ReportMetric(ns[1]/n, "ingress-ns/pkt")
	b.ReportMetric(ns[0]/n, "empty-ns/pkt")
	if ns[0] > 0 && ns[1] > 0 {
		b.ReportMetric(ns[2]/ns[0], "x-empty")
		b.ReportMetric(ns[2]/ns[1], "x-ingress")
	}
}
