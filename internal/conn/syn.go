package conn

import (
	"net/netip"
	"sort"
)

// SYNTuple is what one 4-tuple's SYNs (connection attempts) added up to
// over an interval.
type SYNTuple struct {
	Src, Dst     netip.Addr
	Sport, Dport uint16
	SYNs         uint64
}

// SYNSource is what one source address's SYNs added up to over an
// interval. Earlier is an upper bound on SYNs before the source was
// counted exactly (the packet path's sketch); 0 when there were none.
type SYNSource struct {
	Addr    netip.Addr
	SYNs    uint64
	Earlier uint64
}

// RankSYNTuples orders tuples busiest first, ties by their ends, and keeps
// the first top (0: all). `syn` and anything else that ranks connection
// attempts share the order, so their lists agree.
func RankSYNTuples(ts []SYNTuple, top int) []SYNTuple {
	sort.Slice(ts, func(i, j int) bool {
		a, b := &ts[i], &ts[j]
		if a.SYNs != b.SYNs {
			return a.SYNs > b.SYNs
		}
		if c := a.Src.Compare(b.Src); c != 0 {
			return c < 0
		}
		if a.Sport != b.Sport {
			return a.Sport < b.Sport
		}
		if c := a.Dst.Compare(b.Dst); c != 0 {
			return c < 0
		}
		return a.Dport < b.Dport
	})
	if top > 0 && len(ts) > top {
		ts = ts[:top]
	}
	return ts
}

// RankSYNSources orders sources busiest first, ties by address, and keeps
// the first top (0: all).
func RankSYNSources(ss []SYNSource, top int) []SYNSource {
	sort.Slice(ss, func(i, j int) bool {
		if ss[i].SYNs != ss[j].SYNs {
			return ss[i].SYNs > ss[j].SYNs
		}
		return ss[i].Addr.Compare(ss[j].Addr) < 0
	})
	if top > 0 && len(ss) > top {
		ss = ss[:top]
	}
	return ss
}
