package conn

import (
	"net/netip"
	"testing"
)

func TestRankSYN(t *testing.T) {
	a4, b4 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	a6 := netip.MustParseAddr("fd00::1")
	ts := RankSYNTuples([]SYNTuple{
		{Src: b4, Sport: 1, Dst: a4, Dport: 80, SYNs: 2},
		{Src: a6, Sport: 1, Dst: a6, Dport: 80, SYNs: 5},
		{Src: a4, Sport: 2, Dst: b4, Dport: 80, SYNs: 2},
		{Src: a4, Sport: 1, Dst: b4, Dport: 80, SYNs: 2},
	}, 3)
	want := []SYNTuple{
		{Src: a6, Sport: 1, Dst: a6, Dport: 80, SYNs: 5},
		{Src: a4, Sport: 1, Dst: b4, Dport: 80, SYNs: 2},
		{Src: a4, Sport: 2, Dst: b4, Dport: 80, SYNs: 2},
	}
	if len(ts) != len(want) {
		t.Fatalf("tuples %+v, want %+v", ts, want)
	}
	for i := range want {
		if ts[i] != want[i] {
			t.Errorf("tuple %d = %+v, want %+v", i, ts[i], want[i])
		}
	}
	ss := RankSYNSources([]SYNSource{{Addr: b4, SYNs: 1}, {Addr: a6, SYNs: 1}, {Addr: a4, SYNs: 1, Earlier: 4}, {Addr: a4, SYNs: 9}}, 0)
	if len(ss) != 4 || ss[0].SYNs != 9 || ss[1] != (SYNSource{Addr: a4, SYNs: 1, Earlier: 4}) || ss[2].Addr != b4 || ss[3].Addr != a6 {
		t.Errorf("sources %+v: want busiest first, then IPv4 before IPv6 in address order", ss)
	}
}
