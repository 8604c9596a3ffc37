package probe

// Per-packet cost of the egress entry point against the empty TC program,
// in the same run, as BenchmarkPacketPath does for ingress:
//
//	go test -run '^$' -bench PacketPathEgress -count 5 ./internal/probe/

import (
	"fmt"
	"testing"
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
				benchPair(b, bp.emptyTC, lens, frames, benchChunk)
			})
		}
	}
}
