package probe

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Kernels before 6.6 have no tcx, so the TC hook there is a cls_bpf
// filter in direct-action mode under a clsact qdisc, made through netlink.
// Unlike a bpf_link, such a filter outlives a killed process. So every
// filter tcplens makes carries a tag that says it is tcplens's and whose:
//
//   - priority TCFilterPriority on the ingress or egress hook,
//   - handle: the PID of the process that made it,
//   - name "tcplens pid=PID".
//
// A tagged filter is stale when its owner no longer holds its program: the
// process is gone, or the PID now belongs to some other process. Stale
// filters are removed before attaching (RemoveStaleTCFilters) and reported
// by doctor (StaleTCFilters).
const (
	TCFilterPriority = 0xc7e5 // 51173, well away from tc's default priorities (49152 and down)
	tcFilterPrefix   = "tcplens pid="
)

// TCFilter is one tcplens-tagged netlink TC filter.
type TCFilter struct {
	Interface string
	Index     int
	Priority  uint16
	Handle    uint32
	Name      string
	ProgID    int
	OwnerPID  int
	Parent    uint32 // netlink.HANDLE_MIN_INGRESS or HANDLE_MIN_EGRESS
}

func (f TCFilter) String() string {
	return fmt.Sprintf("%s %s: filter %q prio %d handle %#x prog %d", f.Interface, parentName(f.Parent), f.Name, f.Priority, f.Handle, f.ProgID)
}

// parentName is tc's word for a clsact hook.
func parentName(parent uint32) string {
	if parent == netlink.HANDLE_MIN_EGRESS {
		return "egress"
	}
	return "ingress"
}

// tcAttachment is a filter this process made, and whether it made the
// clsact qdisc too (then it removes the qdisc when the last filter goes).
type tcAttachment struct {
	index       int
	handle      uint32
	ownsQdisc   bool
	deviceGone  bool
	filterAttrs netlink.FilterAttrs
}

func clsact(index int) *netlink.GenericQdisc {
	return &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{
			LinkIndex: index,
			Handle:    netlink.MakeHandle(0xffff, 0),
			Parent:    netlink.HANDLE_CLSACT,
		},
		QdiscType: "clsact",
	}
}

// attachTCNetlink adds prog as a direct-action cls_bpf filter on iface's
// ingress, tagged as this process's, under a clsact qdisc that it makes
// unless one is there.
func attachTCNetlink(prog *ebpf.Program, iface Interface) (*tcAttachment, error) {
	return attachTCNetlinkParent(prog, iface, netlink.HANDLE_MIN_INGRESS)
}

// attachTCNetlinkParent is attachTCNetlink on the clsact hook parent:
// netlink.HANDLE_MIN_INGRESS or HANDLE_MIN_EGRESS.
func attachTCNetlinkParent(prog *ebpf.Program, iface Interface, parent uint32) (*tcAttachment, error) {
	a := &tcAttachment{index: iface.Index, handle: uint32(os.Getpid())}
	err := netlink.QdiscAdd(clsact(iface.Index))
	switch {
	case err == nil:
		a.ownsQdisc = true
	case errors.Is(err, unix.EEXIST):
		// A clsact (or ingress) qdisc is there already: share it.
	default:
		return nil, fmt.Errorf("add clsact qdisc to %s: %w", iface.Name, explainTCAdd("clsact qdisc (sch_ingress)", err))
	}
	a.filterAttrs = netlink.FilterAttrs{
		LinkIndex: iface.Index,
		Parent:    parent,
		Handle:    a.handle,
		Priority:  TCFilterPriority,
		Protocol:  unix.ETH_P_ALL,
	}
	f := &netlink.BpfFilter{
		FilterAttrs:  a.filterAttrs,
		Fd:           prog.FD(),
		Name:         tcFilterPrefix + strconv.Itoa(os.Getpid()),
		DirectAction: true,
	}
	if err := netlink.FilterAdd(f); err != nil {
		a.removeQdiscIfEmpty()
		return nil, fmt.Errorf("add cls_bpf filter to %s %s: %w", iface.Name, parentName(parent), explainTCAdd("cls_bpf classifier", err))
	}
	return a, nil
}

// Close removes the filter, and the qdisc if this process made it and no
// filter is left under it. A deleted device took both with it.
func (a *tcAttachment) Close() error {
	if a.deviceGone {
		return nil
	}
	err := netlink.FilterDel(&netlink.BpfFilter{FilterAttrs: a.filterAttrs})
	if errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EINVAL) {
		err = nil // the device, its qdisc or the filter went away already
	}
	if err != nil {
		return fmt.Errorf("remove cls_bpf filter prio %d handle %#x: %w", TCFilterPriority, a.handle, err)
	}
	a.removeQdiscIfEmpty()
	return nil
}

func (a *tcAttachment) removeQdiscIfEmpty() {
	// Someone else may use it now, or we cannot tell: then it stays.
	if a.ownsQdisc && clsactEmpty(a.index) {
		_ = netlink.QdiscDel(clsact(a.index))
	}
}

// taggedTCFilters lists the tcplens-tagged filters on ingress and egress
// of the link with index, each with its owner.
func taggedTCFilters(index int, name string) ([]TCFilter, error) {
	var out []TCFilter
	for _, parent := range []uint32{netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS} {
		fs, err := taggedTCFiltersOn(index, name, parent)
		if err != nil {
			return out, err
		}
		out = append(out, fs...)
	}
	return out, nil
}

func taggedTCFiltersOn(index int, name string, parent uint32) ([]TCFilter, error) {
	link := &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: index, Name: name}}
	fs, err := netlink.FilterList(link, parent)
	if err != nil {
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return nil, nil // no clsact/ingress qdisc: no filters
		}
		return nil, fmt.Errorf("list TC filters of %s: %w", name, explainNetlink(err))
	}
	var out []TCFilter
	for _, f := range fs {
		bf, ok := f.(*netlink.BpfFilter)
		if !ok || bf.Priority != TCFilterPriority || !strings.HasPrefix(bf.Name, tcFilterPrefix) {
			continue
		}
		pid, _ := strconv.Atoi(strings.TrimPrefix(bf.Name, tcFilterPrefix))
		out = append(out, TCFilter{
			Interface: name, Index: index, Priority: bf.Priority, Handle: bf.Handle,
			Name: bf.Name, ProgID: bf.Id, OwnerPID: pid, Parent: parent,
		})
	}
	return out, nil
}

// Stale says the filter's owner no longer holds its program open: the
// process is gone, or its PID was reused by a process that does not hold
// the program. A filter that cannot be judged counts as live.
func (f TCFilter) Stale() bool {
	if f.OwnerPID <= 0 {
		return true
	}
	fdDir := filepath.Join("/proc", strconv.Itoa(f.OwnerPID), "fdinfo")
	ents, err := os.ReadDir(fdDir)
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	want := "prog_id:\t" + strconv.Itoa(f.ProgID) + "\n"
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(fdDir, e.Name()))
		if err == nil && strings.Contains(string(b), want) {
			return false
		}
	}
	return true
}

// StaleTCFilters lists tcplens's stale TC filters on every interface of
// this network namespace, for doctor.
func StaleTCFilters() ([]TCFilter, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", explainNetlink(err))
	}
	var out []TCFilter
	for _, l := range links {
		fs, err := taggedTCFilters(l.Attrs().Index, l.Attrs().Name)
		if err != nil {
			return out, err
		}
		for _, f := range fs {
			if f.Stale() {
				out = append(out, f)
			}
		}
	}
	return out, nil
}

// RemoveStaleTCFilters removes tcplens's stale filters from iface's
// ingress and egress and returns them.
func RemoveStaleTCFilters(iface Interface) (removed []TCFilter, err error) {
	fs, err := taggedTCFilters(iface.Index, iface.Name)
	if err != nil {
		return nil, err
	}
	for _, f := range fs {
		if !f.Stale() {
			continue
		}
		del := &netlink.BpfFilter{FilterAttrs: netlink.FilterAttrs{
			LinkIndex: iface.Index, Parent: f.Parent,
			Handle: f.Handle, Priority: f.Priority, Protocol: unix.ETH_P_ALL,
		}}
		if err := netlink.FilterDel(del); err != nil && !errors.Is(err, unix.ENOENT) {
			return removed, fmt.Errorf("remove stale tcplens filter (%s): %w", f, explainNetlink(err))
		}
		removed = append(removed, f)
	}
	return removed, nil
}

func clsactEmpty(index int) bool {
	link := &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: index}}
	for _, parent := range []uint32{netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS} {
		fs, err := netlink.FilterList(link, parent)
		if err != nil || len(fs) > 0 {
			return false
		}
	}
	return true
}

func explainNetlink(err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return fmt.Errorf("%w (netlink TC needs CAP_NET_ADMIN)", ErrPrivileges)
	}
	return err
}

// explainTCAdd is explainNetlink for adding a qdisc or filter, where
// ENOENT means the kernel has no such kind (sch_ingress or cls_bpf not
// built, or not loadable).
func explainTCAdd(kind string, err error) error {
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP) {
		return fmt.Errorf("%w: no %s in this kernel (%v)", ErrUnsupported, kind, err)
	}
	return explainNetlink(err)
}

// checkTCNetlink tries the netlink TC hook on lo with a program that does
// nothing, and removes what it added.
func checkTCNetlink() error {
	idx, err := loopback()
	if err != nil {
		return err
	}
	prog, err := trivialProgram(ebpf.SchedCLS, -1 /* TC_ACT_UNSPEC */)
	if err != nil {
		return explainAttach(err)
	}
	defer prog.Close()
	a, err := attachTCNetlink(prog, Interface{Name: "lo", Index: idx})
	if err != nil {
		return err
	}
	return a.Close()
}

// staleFiltersCheck is doctor's line on filters left by killed runs.
func staleFiltersCheck() Check {
	c := Check{Name: "stale tcplens TC filters", OK: true, Info: true}
	fs, err := StaleTCFilters()
	switch {
	case err != nil:
		c.Detail = "could not look: " + err.Error()
	case len(fs) == 0:
		c.Detail = "none in this network namespace"
	default:
		parts := make([]string, len(fs))
		for i, f := range fs {
			parts[i] = fmt.Sprintf("%s (pid %d is gone)", f, f.OwnerPID)
		}
		c.Info, c.Warn = false, true
		c.Detail = strings.Join(parts, "; ") + ": left by killed runs, still running a dead copy of the program; " +
			"the next flags or syn run on that interface removes them, or: tc filter del dev IFACE ingress|egress pref " +
			strconv.Itoa(TCFilterPriority) + " handle HANDLE bpf"
	}
	return c
}
