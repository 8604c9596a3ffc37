package probe

// Per-SYN cost of `syn --by signature` (bpf/synsig.h), each variant
// against the empty program in the same run (benchPair):
//
//	syn            `syn` as it was: tuple and source tables
//	signature      `syn --by signature`: the option walk and one per-CPU
//	               hash lookup, no tuple or source table
//	syn+signature  `syn --by tuple,source,signature`
//
// The frame is a Linux SYN (MSTNW:1460:7, 20 bytes of options), the same
// tuple every time (map lookups that hit); "ack" is established traffic,
// which no variant walks.
//
//	go test -run '^$' -bench SynSignature -count 5 ./internal/probe/

import (
	"fmt"
	"testing"

	"github.com/tcplens/tcplens/internal/bpfobj"
	"github.com/tcplens/tcplens/internal/testutil"
)

func BenchmarkSynSignature(b *testing.B) {
	testutil.RequirePrivileged(b)
	var objs bpfobj.BenchObjects
	if err := bpfobj.LoadBenchObjects(&objs, nil); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { objs.Close() })
	variants := []struct {
		name string
		cfg  PacketConfig
	}{
		{"syn", PacketConfig{TrackSYN: true}},
		{"signature", PacketConfig{SYNSignatures: true}},
		{"syn+signature", PacketConfig{TrackSYN: true, SYNSignatures: true}},
	}
	paths := make([]*PacketPath, len(variants))
	for i, v := range variants {
		pp, err := LoadPacketPath(v.cfg, 1)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { pp.Close() })
		paths[i] = pp
	}
	for _, hook := range []Hook{HookXDP, HookTC} {
		empty := objs.EmptyXdp
		if hook == HookTC {
			empty = objs.EmptyTc
		}
		for _, v6 := range []bool{false, true} {
			fam := "ipv4"
			if v6 {
				fam = "ipv6"
			}
			for _, kind := range []string{"syn", "ack"} {
				frame := benchFrame(b, v6, benchSrc(v6, 1), 40000, 80, kind == "syn")
				for i, v := range variants {
					pp := paths[i]
					b.Run(fmt.Sprintf("%s/%s/%s/%s", hook, fam, kind, v.name), func(b *testing.B) {
						lens := pp.Program(0, hook)
						// The frame takes the path claimed: a SYN is counted
						// under its signature when the view is on.
						var before map[SYNSig]uint64
						if v.cfg.SYNSignatures {
							var err error
							if before, err = pp.SYNSignatures(); err != nil {
								b.Fatal(err)
							}
						}
						if _, _, err := lens.Test(frame); err != nil {
							b.Fatal(err)
						}
						if v.cfg.SYNSignatures {
							after, err := pp.SYNSignatures()
							if err != nil {
								b.Fatal(err)
							}
							linux, _ := ParseSYNSignature("MSTNW:1460:7")
							k := SYNSig{Sig: linux}
							if want := before[k] + b2u(kind == "syn"); after[k] != want {
								b.Fatalf("MSTNW:1460:7 counted %d, want %d", after[k], want)
							}
						}
						benchPair(b, empty, lens, [][]byte{frame}, benchChunk)
					})
				}
			}
		}
	}
}
