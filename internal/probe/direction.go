package probe

import (
	"fmt"
	"io"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"

	"github.com/tcplens/tcplens/internal/bpfobj"
)

// Direction is which packets the packet path sees on its interfaces:
// received (ingress), sent (egress) or both. The zero value is DirIn.
type Direction uint8

const (
	DirIn   Direction = 1 << iota // packets received
	DirOut                        // packets sent
	DirBoth = DirIn | DirOut
)

// ParseDirection checks a --direction value.
func ParseDirection(s string) (Direction, error) {
	switch s {
	case "in":
		return DirIn, nil
	case "out":
		return DirOut, nil
	case "both":
		return DirBoth, nil
	}
	return 0, fmt.Errorf("unknown direction %q: want in, out or both", s)
}

// Has says whether d includes one of o's directions.
func (d Direction) Has(o Direction) bool {
	if d == 0 {
		d = DirIn
	}
	return d&o != 0
}

func (d Direction) String() string {
	switch d {
	case 0, DirIn:
		return "in"
	case DirOut:
		return "out"
	case DirBoth:
		return "both"
	}
	return fmt.Sprintf("Direction(%d)", uint8(d))
}

// Directions lists d's single directions, in before out.
func (d Direction) Directions() []Direction {
	var out []Direction
	for _, one := range []Direction{DirIn, DirOut} {
		if d.Has(one) {
			out = append(out, one)
		}
	}
	return out
}

// counterKey is the counters map key of slot's direction: bpf/packet.c
// keeps ingress counters at slot and egress counters at MaxInterfaces+slot.
func counterKey(slot uint32, dir Direction) uint32 {
	if dir == DirOut {
		return MaxInterfaces + slot
	}
	return slot
}

// egressTrials is how egress is attached for a requested hook. XDP has no
// egress hook, so egress always goes on TC: with --hook xdp (or auto
// choosing native XDP) ingress is XDP and egress TC on the same interface.
// tcx and tc-netlink ask for one TC mechanism for both directions.
func egressTrials(h Hook) []hookTrial {
	tcx := hookTrial{HookTC, ModeTCX}
	nl := hookTrial{HookTC, ModeNetlink}
	switch h {
	case HookTCX:
		return []hookTrial{tcx}
	case HookTCNetlink:
		return []hookTrial{nl}
	}
	return []hookTrial{tcx, nl}
}

// attachEgress attaches slot's egress program to iface with one of
// trials.
func (p *PacketPath) attachEgress(slot int, iface Interface, tr hookTrial) (io.Closer, error) {
	prog := p.colls[slot].Programs[bpfobj.PacketProgTcplensTcEgress]
	switch tr.mode {
	case ModeTCX:
		return link.AttachTCX(link.TCXOptions{Interface: iface.Index, Program: prog, Attach: ebpf.AttachTCXEgress})
	case ModeNetlink:
		t, err := attachTCNetlinkParent(prog, iface, netlink.HANDLE_MIN_EGRESS)
		if err != nil {
			return nil, err
		}
		return t, nil
	}
	return nil, fmt.Errorf("no egress on %s %s", tr.hook, tr.mode)
}

// HookText says how a is attached, for people: "tc tcx", or with egress
// "xdp native, egress tc tcx", or for egress alone "egress tc netlink".
func (a Attachment) HookText() string {
	in := ""
	if a.Mode != "" {
		in = fmt.Sprintf("%s %s", a.Hook, a.Mode)
	}
	if a.EgressMode == "" {
		return in
	}
	out := "egress tc " + a.EgressMode
	if in == "" {
		return out
	}
	return in + ", " + out
}

// FeatTCEgress: a TC egress hook, tcx or netlink TC, for --direction out
// and both (XDP has no egress). Without it flags and syn still watch
// ingress.
const FeatTCEgress Feature = "tc_egress"

func init() {
	for _, cmd := range []string{"flags", "syn", "capture"} {
		CommandExtras[cmd] = append(CommandExtras[cmd], Extra{FeatTCEgress, "--direction out/both (no TC egress hook)"})
	}
}

// checkTCEgress tries the egress hooks on lo with a program that does
// nothing, in the order the packet path tries them, and says which works.
func checkTCEgress() (string, error) {
	idx, err := loopback()
	if err != nil {
		return "", err
	}
	prog, err := trivialProgram(ebpf.SchedCLS, -1 /* TC_ACT_UNSPEC */)
	if err != nil {
		return "", explainAttach(err)
	}
	defer prog.Close()
	l, tcxErr := link.AttachTCX(link.TCXOptions{Program: prog, Interface: idx, Attach: ebpf.AttachTCXEgress})
	if tcxErr == nil {
		return "tcx egress (tried on lo)", l.Close()
	}
	a, err := attachTCNetlinkParent(prog, Interface{Name: "lo", Index: idx}, netlink.HANDLE_MIN_EGRESS)
	if err != nil {
		return "", fmt.Errorf("tcx: %v; netlink TC: %w", explainAttach(tcxErr), err)
	}
	return "netlink TC egress (tried on lo; no tcx)", a.Close()
}
