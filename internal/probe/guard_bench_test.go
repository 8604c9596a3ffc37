package probe

// Per-packet cost of the guard stage, against the empty program in the same
// run (benchPair), with a realistic rule set: 1,000 block prefixes, an
// allow list, port rules, per-source and global SYN buckets and the scan
// rule, all on.
//
//	go test -run '^$' -bench GuardPath -benchtime 2000000x -count 5 ./internal/probe/

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/tcplens/tcplens/internal/bpfobj"
	"github.com/tcplens/tcplens/internal/testutil"
)

func BenchmarkGuardPath(b *testing.B) {
	testutil.RequirePrivileged(b)
	pp, err := LoadPacketPath(PacketConfig{Guard: true}, 1)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pp.Close() })
	var objs bpfobj.BenchObjects
	if err := bpfobj.LoadBenchObjects(&objs, nil); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { objs.Close() })

	rules := GuardRules{
		Allow:        []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8:aaaa::/48")},
		DropPorts:    []uint16{23, 445},
		DropSYNPorts: []uint16{25},
		// Bursts of a second: every bucket holds a tick's tokens, so the
		// stage runs on the coarse clock (bpf/guard.h, guard_now).
		SYNRate: 1e9, SYNBurst: 1 << 30, SYNRateGlobal: 1e9, SYNBurstGlobal: 1 << 30,
		ScanPorts: 200, ScanWindow: time.Second, BlockFor: time.Second,
	}
	for i := 0; i < 500; i++ { // 1,000 prefixes that the benchmark's sources are not in
		rules.Block = append(rules.Block, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24),
			netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xbb, byte(i >> 8), byte(i)}), 56))
	}
	blocked4, blocked6 := net.IP{10, 0, 7, 1}, net.ParseIP("2001:db8:bb00:700::1")
	if err := pp.SetGuardRules(rules); err != nil {
		b.Fatal(err)
	}
	// The same packet path without the guard stage (what `flags` loads),
	// for the stage's own share.
	plain, err := LoadPacketPath(PacketConfig{}, 1)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { plain.Close() })
	// The same rules plus --syn-require-mss: the option walk's share
	// (a SYN's options are read only with the rule on).
	mss, err := LoadPacketPath(PacketConfig{Guard: true}, 1)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { mss.Close() })
	mssRules := rules
	mssRules.RequireMSS = true
	if err := mss.SetGuardRules(mssRules); err != nil {
		b.Fatal(err)
	}
	// The same rules with bursts of 65 us, shorter than any tick: the
	// precise clock (bpf_ktime_get_ns), for its share.
	fine, err := LoadPacketPath(PacketConfig{Guard: true}, 1)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { fine.Close() })
	fineRules := rules
	fineRules.SYNBurst, fineRules.SYNBurstGlobal = 1<<16, 1<<16
	if err := fine.SetGuardRules(fineRules); err != nil {
		b.Fatal(err)
	}
	// parse-only is bpf/parse.h and nothing else (bench_empty.c): the
	// floor under any stage that must read the TCP header.
	for _, variant := range []string{"guard", "no-guard", "guard-mss", "guard-fineclock", "parse-only"} {
		for _, hook := range []Hook{HookXDP, HookTC} {
			empty, lens := objs.EmptyXdp, pp.Program(0, hook)
			if hook == HookTC {
				empty = objs.EmptyTc
			}
			switch variant {
			case "no-guard":
				lens = plain.Program(0, hook)
			case "guard-mss":
				lens = mss.Program(0, hook)
			case "guard-fineclock":
				lens = fine.Program(0, hook)
			case "parse-only":
				lens = objs.ParseXdp
				if hook == HookTC {
					lens = objs.ParseTc
				}
			}
			for _, v6 := range []bool{false, true} {
				fam, blocked := "ipv4", blocked4
				if v6 {
					fam, blocked = "ipv6", blocked6
				}
				cases := []struct {
					name  string
					frame []byte
					drop  bool
				}{
					{"ack-pass", benchFrame(b, v6, benchSrc(v6, 1), 40000, 80, false), false},
					{"syn-every-rule", benchFrame(b, v6, benchSrc(v6, 1), 40000, 80, true), false},
					{"block-drop", benchFrame(b, v6, blocked, 40000, 80, true), true},
				}
				for _, c := range cases {
					b.Run(fmt.Sprintf("%s/%s/%s/%s", variant, hook, fam, c.name), func(b *testing.B) {
						ret, _, err := lens.Test(c.frame)
						if err != nil {
							b.Fatal(err)
						}
						if ret != wantReturn(hook, c.drop && variant != "no-guard" && variant != "parse-only") {
							b.Fatalf("returned %d, want drop=%v", ret, c.drop)
						}
						benchPair(b, empty, lens, [][]byte{c.frame}, benchChunk)
					})
				}
			}
		}
	}
}
