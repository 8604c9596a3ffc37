package probe

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Feature names one thing a command may need from the kernel.
type Feature string

const (
	FeatBPF        Feature = "bpf"     // bpf() works for this process
	FeatBTF        Feature = "btf"     // kernel BTF, for CO-RE and enum names
	FeatRingbuf    Feature = "ringbuf" // BPF ring buffer map
	FeatXDPLink    Feature = "xdp_link"
	FeatTCXLink    Feature = "tcx_link"
	FeatTCNetlink  Feature = "tc_netlink"                   // clsact qdisc + cls_bpf filter, TC before tcx
	FeatPacketHook Feature = "xdp_link|tcx_link|tc_netlink" // any hook will do
	// FeatDefaultRoute: flags and syn watch the default route's interface
	// when no -i is given.
	FeatDefaultRoute Feature = "default_route"
	// FeatResetReasons: the kernel's BTF has enum sk_rst_reason (6.10+).
	FeatResetReasons Feature = "btf enum sk_rst_reason"
)

// Tracepoint is one kernel tracepoint the project attaches to. Every one
// is attached as a raw tracepoint (BPF_RAW_TRACEPOINT_OPEN), with the
// kernel's own arguments: the kernel skips a classic tracepoint program
// whenever any tracing program already runs on its CPU (bpf_prog_active),
// so a softirq's event arriving during another program's run went unseen,
// while a raw tracepoint program is skipped only when it re-enters itself
// (counted as its recursion_misses). Raw tracepoints need no tracefs and
// no perf_event_open, so no CAP_SYS_ADMIN where
// kernel.perf_event_paranoid=3 (Debian, Ubuntu). Group is the event's
// group in tracefs, for the name people know it by.
type Tracepoint struct {
	Group, Name string
}

func (t Tracepoint) String() string { return t.Group + ":" + t.Name }

// Feature is the name doctor checks the tracepoint under.
func (t Tracepoint) Feature() Feature { return Feature("tp " + t.String()) }

// The tracepoints tcplens uses; Tracepoints (sockobjects.go) lists them.
var (
	TPRetransmitSKB    = Tracepoint{Group: "tcp", Name: "tcp_retransmit_skb"}
	TPRetransmitSynack = Tracepoint{Group: "tcp", Name: "tcp_retransmit_synack"}
	TPSendReset        = Tracepoint{Group: "tcp", Name: "tcp_send_reset"}
	TPReceiveReset     = Tracepoint{Group: "tcp", Name: "tcp_receive_reset"}
	TPSetState         = Tracepoint{Group: "sock", Name: "inet_sock_set_state"}
	TPKfreeSKB         = Tracepoint{Group: "skb", Name: "kfree_skb"}
	TPTCPProbe         = Tracepoint{Group: "tcp", Name: "tcp_probe"}
	TPSockSendLength   = Tracepoint{Group: "sock", Name: "sock_send_length"}
	TPSockRecvLength   = Tracepoint{Group: "sock", Name: "sock_recv_length"}
	TPDestroySock      = Tracepoint{Group: "tcp", Name: "tcp_destroy_sock"}
)

// Extra is a feature a command can do without, and what it then lacks.
type Extra struct {
	Feature Feature
	Lacks   string
}

// Check is one line of doctor's table.
type Check struct {
	Feature Feature
	Name    string
	OK      bool
	Info    bool // informational: never makes a command unready
	Warn    bool // something to act on that makes no command unready
	Detail  string
}

// RunChecks tries each feature on this kernel, as this process. Nothing
// stays attached: every trial link is closed before the next check.
func RunChecks() []Check {
	var checks []Check
	add := func(f Feature, name string, err error, okDetail string) {
		c := Check{Feature: f, Name: name, OK: err == nil, Detail: okDetail}
		if err != nil {
			c.Detail = err.Error()
		}
		checks = append(checks, c)
	}
	info := func(name, detail string) {
		checks = append(checks, Check{Name: name, OK: true, Info: true, Detail: detail})
	}

	var uts unix.Utsname
	if unix.Uname(&uts) == nil {
		info("kernel", unix.ByteSliceToString(uts.Release[:]))
	}
	info("capabilities", capabilitySummary())

	add(FeatBTF, "BTF (/sys/kernel/btf/vmlinux)", checkBTF(), "kernel BTF loads")
	add(FeatResetReasons, "reset reasons (BTF enum sk_rst_reason)", checkResetReasons(), "resets are named by the kernel's reasons")
	bpfErr := checkBPF()
	add(FeatBPF, "bpf() syscall", bpfErr, "maps and programs can be created")
	if mountedAs(bpffsPath, bpffsMagic) {
		info("bpffs", "mounted at "+bpffsPath+" (tcplens pins nothing, so it is optional)")
	} else {
		info("bpffs", "not mounted at "+bpffsPath+"; optional: tcplens pins nothing")
	}
	routeIface, routeErr := DefaultRouteInterface()
	add(FeatDefaultRoute, "default route", routeErr, "via "+routeIface+": flags and syn watch it when no -i is given")

	if bpfErr != nil {
		for _, f := range []Feature{FeatRingbuf, FeatXDPLink, FeatTCXLink, FeatTCNetlink, FeatTCEgress} {
			add(f, string(f), errors.New("skipped: bpf() does not work"), "")
		}
		for _, tp := range Tracepoints {
			add(tp.Feature(), "tracepoint "+tp.String(), errors.New("skipped: bpf() does not work"), "")
		}
		return checks
	}
	add(FeatRingbuf, "ring buffer map", features.HaveMapType(ebpf.RingBuf), "BPF_MAP_TYPE_RINGBUF")
	add(FeatXDPLink, "XDP link", checkXDPLink(), "bpf_link for XDP (tried on lo, generic mode)")
	add(FeatTCXLink, "tcx link", checkTCXLink(), "bpf_link for TC ingress (tried on lo)")
	add(FeatTCNetlink, "netlink TC", checkTCNetlink(), "clsact qdisc and cls_bpf filter (tried on lo); TC where tcx is missing")
	egress, egressErr := checkTCEgress()
	add(FeatTCEgress, "TC egress", egressErr, egress+": flags and syn --direction out or both")
	checks = append(checks, staleFiltersCheck())
	for _, tp := range Tracepoints {
		add(tp.Feature(), "tracepoint "+tp.String(), checkTracepoint(tp), "attached and detached")
	}
	return checks
}

// Degraded lists, per command, what it runs without on this kernel: the
// Lacks of each of its extras that failed, once each.
func Degraded(checks []Check) map[string][]string {
	ok := map[Feature]bool{}
	for _, c := range checks {
		if c.Feature != "" {
			ok[c.Feature] = c.OK
		}
	}
	out := map[string][]string{}
	for cmd, extras := range CommandExtras {
		for _, e := range extras {
			if !ok[e.Feature] && !slices.Contains(out[cmd], e.Lacks) {
				out[cmd] = append(out[cmd], e.Lacks)
			}
		}
	}
	return out
}

// Missing lists, per command, the needed features that failed.
func Missing(checks []Check) map[string][]Feature {
	ok := map[Feature]bool{}
	for _, c := range checks {
		if c.Feature != "" {
			ok[c.Feature] = c.OK
		}
	}
	ok[FeatPacketHook] = ok[FeatXDPLink] || ok[FeatTCXLink] || ok[FeatTCNetlink]
	out := map[string][]Feature{}
	for cmd, needs := range CommandNeeds {
		for _, f := range needs {
			if !ok[f] {
				out[cmd] = append(out[cmd], f)
			}
		}
	}
	return out
}

func checkResetReasons() error {
	_, err := ResetReasons()
	return err
}

func checkBTF() error {
	if _, err := btf.LoadKernelSpec(); err != nil {
		return fmt.Errorf("no kernel BTF: %v (needs CONFIG_DEBUG_INFO_BTF=y)", err)
	}
	return nil
}

func checkBPF() error {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return ErrPrivileges
		}
		return err
	}
	m.Close()
	return nil
}

func trivialProgram(t ebpf.ProgramType, ret int32) (*ebpf.Program, error) {
	return ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         t,
		License:      "Dual BSD/GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, ret), asm.Return()},
	})
}

func loopback() (int, error) {
	ifc, err := net.InterfaceByName("lo")
	if err != nil {
		return 0, fmt.Errorf("no lo in this network namespace to try on: %v", err)
	}
	return ifc.Index, nil
}

func checkXDPLink() error {
	idx, err := loopback()
	if err != nil {
		return err
	}
	prog, err := trivialProgram(ebpf.XDP, 2 /* XDP_PASS */)
	if err != nil {
		return explainAttach(err)
	}
	defer prog.Close()
	l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: idx, Flags: link.XDPGenericMode})
	if err != nil {
		return explainAttach(err)
	}
	return l.Close()
}

func checkTCXLink() error {
	idx, err := loopback()
	if err != nil {
		return err
	}
	prog, err := trivialProgram(ebpf.SchedCLS, -1 /* TC_ACT_UNSPEC */)
	if err != nil {
		return explainAttach(err)
	}
	defer prog.Close()
	l, err := link.AttachTCX(link.TCXOptions{Program: prog, Interface: idx, Attach: ebpf.AttachTCXIngress})
	if err != nil {
		return explainAttach(err)
	}
	return l.Close()
}

func checkTracepoint(tp Tracepoint) error {
	prog, err := trivialProgram(ebpf.RawTracepoint, 0)
	if err != nil {
		return explainAttach(err)
	}
	defer prog.Close()
	l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: tp.Name, Program: prog})
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: this kernel has no tracepoint %s", ErrUnsupported, tp)
		}
		return explainAttach(err)
	}
	return l.Close()
}

// capNames are the capabilities doctor reports.
var capNames = []Capability{CapBPF, CapNetAdmin, CapPerfmon, CapDACReadSearch, CapSysAdmin}

// capabilitySummary reads the effective capabilities of this process.
func capabilitySummary() string {
	eff, err := effectiveCaps()
	if err != nil {
		return "unknown: " + err.Error()
	}
	var parts []string
	for _, c := range capNames {
		mark := "-"
		if eff&(1<<c.Bit) != 0 {
			mark = "+"
		}
		parts = append(parts, mark+c.Name)
	}
	return strings.Join(parts, " ")
}
