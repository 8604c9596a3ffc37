package conn

import (
	"fmt"
	"net/netip"
	"sort"
)

// GroupBy names how connections are grouped.
type GroupBy string

const (
	GroupNone      GroupBy = ""
	GroupProcess   GroupBy = "process"
	GroupLPort     GroupBy = "lport"
	GroupRAddr     GroupBy = "raddr"
	GroupRNet24    GroupBy = "rnet/24"
	GroupContainer GroupBy = "container"
)

// GroupKeys lists the --group-by values.
var GroupKeys = []GroupBy{GroupProcess, GroupLPort, GroupRAddr, GroupRNet24, GroupContainer}

// ParseGroupBy checks a --group-by value.
func ParseGroupBy(s string) (GroupBy, error) {
	for _, g := range GroupKeys {
		if string(g) == s {
			return g, nil
		}
	}
	return "", fmt.Errorf("unknown --group-by %q: want process, lport, raddr, rnet/24 or container", s)
}

// Group is the connections that share one key.
type Group struct {
	Key          string
	Connections  int
	TxBps, RxBps float64
	Retrans      uint64 // in the interval
	Worst        Verdict
	// Share of all connections, and of all throughput (both directions).
	ConnShare, ThroughputShare float64
}

// GroupKey is c's group under g.
func GroupKey(c *Conn, g GroupBy) string {
	switch g {
	case GroupProcess:
		if c.Owner.PID == 0 {
			return "-"
		}
		return fmt.Sprintf("%d/%s", c.Owner.PID, c.Owner.Comm)
	case GroupLPort:
		return fmt.Sprint(c.Local.Port())
	case GroupRAddr:
		return c.Remote.Addr().String()
	case GroupRNet24:
		a := c.Remote.Addr()
		bits := 24
		if a.Is6() {
			bits = 64 // /24 means nothing for IPv6: its subnet is /64
		}
		p, err := a.Prefix(bits)
		if err != nil {
			return a.String()
		}
		return p.String()
	case GroupContainer:
		switch {
		case c.Owner.PodUID != "":
			return "pod:" + c.Owner.PodUID
		case c.Owner.Container != "":
			return "container:" + c.Owner.Container[:12]
		case c.Owner.Unit != "":
			return "unit:" + c.Owner.Unit
		case c.Owner.Cgroup != "":
			return "cgroup:" + c.Owner.Cgroup
		}
		return "-"
	}
	return ""
}

// Groups aggregates conns (closed ones left out) under g, largest
// throughput first, then most connections.
func Groups(conns []Conn, g GroupBy) []Group {
	by := map[string]*Group{}
	var total int
	var totalBps float64
	for i := range conns {
		c := &conns[i]
		if c.Closed || c.State == StateListen {
			continue
		}
		k := GroupKey(c, g)
		gr := by[k]
		if gr == nil {
			gr = &Group{Key: k}
			by[k] = gr
		}
		gr.Connections++
		gr.TxBps += c.TxBps
		gr.RxBps += c.RxBps
		gr.Retrans += c.RetransInterval
		gr.Worst = max(gr.Worst, c.Verdict)
		total++
		totalBps += c.TxBps + c.RxBps
	}
	out := make([]Group, 0, len(by))
	for _, gr := range by {
		if total > 0 {
			gr.ConnShare = float64(gr.Connections) / float64(total)
		}
		if totalBps > 0 {
			gr.ThroughputShare = (gr.TxBps + gr.RxBps) / totalBps
		}
		out = append(out, *gr)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.TxBps+a.RxBps != b.TxBps+b.RxBps {
			return a.TxBps+a.RxBps > b.TxBps+b.RxBps
		}
		if a.Connections != b.Connections {
			return a.Connections > b.Connections
		}
		return a.Key < b.Key
	})
	return out
}

// Filter is top's --port/--lport/--rport/--host/-4/-6 in user space.
type Filter struct {
	Ports, LPorts, RPorts []uint16
	Hosts                 []netip.Prefix
	Family                uint8 // 0, 4 or 6
}

// Match says whether c passes f; each list matches when empty or when
// any entry does.
func (f *Filter) Match(c *Conn) bool {
	if f.Family == 4 && !c.Local.Addr().Is4() || f.Family == 6 && c.Local.Addr().Is4() {
		return false
	}
	lp, rp := c.Local.Port(), c.Remote.Port()
	if len(f.Ports) > 0 && !contains(f.Ports, lp) && !contains(f.Ports, rp) {
		return false
	}
	if len(f.LPorts) > 0 && !contains(f.LPorts, lp) {
		return false
	}
	if len(f.RPorts) > 0 && !contains(f.RPorts, rp) {
		return false
	}
	if len(f.Hosts) > 0 {
		ok := false
		for _, p := range f.Hosts {
			if p.Contains(c.Local.Addr()) || p.Contains(c.Remote.Addr()) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func contains(l []uint16, p uint16) bool {
	for _, x := range l {
		if x == p {
			return true
		}
	}
	return false
}
