package testnet

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// Attachments is what BPF is attached to a namespace's veth, from the
// kernel itself: bpftool 7.1 and iproute2 6.1 on our machines predate tcx
// and do not show it, so tcx is asked for with BPF_PROG_QUERY.
type Attachments struct {
	XDP        string           // the XDP part of `ip -d link show`, "" if none
	TCXIngress []ebpf.ProgramID // programs on tcx ingress
	TCXEgress  []ebpf.ProgramID // programs on tcx egress
	Qdiscs     string           // clsact/ingress qdiscs (netlink TC), "" if none
}

// Empty says nothing at all is attached.
func (a Attachments) Empty() bool {
	return a.XDP == "" && len(a.TCXIngress) == 0 && len(a.TCXEgress) == 0 && a.Qdiscs == ""
}

func (a Attachments) String() string {
	if a.Empty() {
		return "nothing attached"
	}
	return fmt.Sprintf("xdp %q, tcx ingress %v, tcx egress %v, qdiscs %q", a.XDP, a.TCXIngress, a.TCXEgress, a.Qdiscs)
}

// Attachments lists what is attached to the namespace's veth.
func (ns *NS) Attachments(t testing.TB) Attachments {
	t.Helper()
	var a Attachments
	out := ns.Run(t, "ip", "-d", "link", "show", "dev", ns.Link)
	for _, f := range strings.Fields(out) {
		if strings.HasPrefix(f, "xdp") || strings.HasPrefix(f, "prog/xdp") {
			a.XDP = strings.TrimSpace(a.XDP + " " + f)
		}
	}
	qd := ns.Run(t, "tc", "qdisc", "show", "dev", ns.Link)
	for _, line := range strings.Split(qd, "\n") {
		if strings.Contains(line, "clsact") || strings.Contains(line, "qdisc ingress") {
			a.Qdiscs = strings.TrimSpace(a.Qdiscs + "; " + line)
		}
	}
	err := ns.Do(func() error {
		ifc, err := net.InterfaceByName(ns.Link)
		if err != nil {
			return err
		}
		for _, q := range []struct {
			attach ebpf.AttachType
			into   *[]ebpf.ProgramID
		}{{ebpf.AttachTCXIngress, &a.TCXIngress}, {ebpf.AttachTCXEgress, &a.TCXEgress}} {
			res, err := link.QueryPrograms(link.QueryOptions{Target: ifc.Index, Attach: q.attach})
			if err != nil {
				return fmt.Errorf("query %v programs: %w", q.attach, err)
			}
			for _, p := range res.Programs {
				*q.into = append(*q.into, p.ID)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("testnet: list BPF attachments of %s in %s: %v", ns.Link, ns.Name, err)
	}
	return a
}
