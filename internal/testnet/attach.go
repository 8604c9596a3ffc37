package testnet

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Attachments is what BPF is attached to a namespace's veth, from the
// kernel itself: bpftool 7.1 and iproute2 6.1 on our machines predate tcx
// and do not show it, so tcx is asked for with BPF_PROG_QUERY, and netlink
// TC filters are listed through rtnetlink.
type Attachments struct {
	XDP        string           // the XDP part of `ip -d link show`, "" if none
	TCX        bool             // the kernel has tcx (6.6+); else the tcx lists are empty
	TCXIngress []ebpf.ProgramID // programs on tcx ingress
	TCXEgress  []ebpf.ProgramID // programs on tcx egress
	Qdiscs     string           // clsact/ingress qdiscs (netlink TC), "" if none
	TCFilters  []TCFilter       // netlink TC filters on ingress and egress
}

// TCFilter is one netlink TC filter.
type TCFilter struct {
	Egress   bool
	Priority uint16
	Handle   uint32
	Kind     string // "bpf", "u32", ...
	Name     string // a bpf filter's name ("tcplens pid=N" for tcplens's)
	ProgID   int    // a bpf filter's program
}

func (f TCFilter) String() string {
	dir := "ingress"
	if f.Egress {
		dir = "egress"
	}
	return fmt.Sprintf("%s %s prio %d handle %#x %q prog %d", dir, f.Kind, f.Priority, f.Handle, f.Name, f.ProgID)
}

// Empty says nothing at all is attached.
func (a Attachments) Empty() bool {
	return a.XDP == "" && len(a.TCXIngress) == 0 && len(a.TCXEgress) == 0 && a.Qdiscs == "" && len(a.TCFilters) == 0
}

func (a Attachments) String() string {
	if a.Empty() {
		return "nothing attached"
	}
	return fmt.Sprintf("xdp %q, tcx ingress %v, tcx egress %v, qdiscs %q, tc filters %v",
		a.XDP, a.TCXIngress, a.TCXEgress, a.Qdiscs, a.TCFilters)
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
		a.TCX = true
		for _, q := range []struct {
			attach ebpf.AttachType
			into   *[]ebpf.ProgramID
		}{{ebpf.AttachTCXIngress, &a.TCXIngress}, {ebpf.AttachTCXEgress, &a.TCXEgress}} {
			res, err := link.QueryPrograms(link.QueryOptions{Target: ifc.Index, Attach: q.attach})
			if err != nil {
				// Kernels before 6.6 do not know the attach type.
				if errors.Is(err, unix.EINVAL) || errors.Is(err, ebpf.ErrNotSupported) {
					a.TCX = false
					break
				}
				return fmt.Errorf("query %v programs: %w", q.attach, err)
			}
			for _, p := range res.Programs {
				*q.into = append(*q.into, p.ID)
			}
		}
		nl := &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: ifc.Index, Name: ifc.Name}}
		for _, parent := range []uint32{netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS} {
			fs, err := netlink.FilterList(nl, parent)
			if err != nil {
				return fmt.Errorf("list TC filters: %w", err)
			}
			for _, f := range fs {
				tf := TCFilter{Egress: parent == netlink.HANDLE_MIN_EGRESS, Priority: f.Attrs().Priority,
					Handle: f.Attrs().Handle, Kind: f.Type()}
				if bf, ok := f.(*netlink.BpfFilter); ok {
					tf.Name, tf.ProgID = bf.Name, bf.Id
				}
				a.TCFilters = append(a.TCFilters, tf)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("testnet: list BPF attachments of %s in %s: %v", ns.Link, ns.Name, err)
	}
	return a
}
