package probe

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Capability is one Linux capability, by its bit in CapEff.
type Capability struct {
	Bit  uint
	Name string
}

var (
	CapDACOverride   = Capability{1, "CAP_DAC_OVERRIDE"}
	CapDACReadSearch = Capability{2, "CAP_DAC_READ_SEARCH"}
	CapNetAdmin      = Capability{12, "CAP_NET_ADMIN"}
	CapSysPtrace     = Capability{19, "CAP_SYS_PTRACE"}
	CapSysAdmin      = Capability{21, "CAP_SYS_ADMIN"}
	CapPerfmon       = Capability{38, "CAP_PERFMON"}
	CapBPF           = Capability{39, "CAP_BPF"}
)

// Minimal capability sets, found by running each command under setpriv as
// user nobody with one capability less each time (test/integration
// privileges_test.go does it on every run):
//   - CAP_BPF: maps and programs;
//   - CAP_PERFMON: the verifier allows pointer arithmetic on packets and
//     bpf_probe_read_kernel only to perfmon-capable loaders, and attaching
//     to a tracepoint (perf_event_open) needs it too;
//   - CAP_NET_ADMIN: XDP and TC programs, and attaching them to a device;
//   - CAP_DAC_READ_SEARCH: tracepoint IDs are read from tracefs, which the
//     kernel mounts mode 0700 for root; uid 0 needs no capability for that.
//
// Debian's and Ubuntu's kernels add a level 3 to kernel.perf_event_paranoid,
// their default, that refuses perf_event_open to all but CAP_SYS_ADMIN, and
// tracepoints attach through perf_event_open: there the socket path needs
// SocketPathCapsPerfRestricted (measured on Debian's 6.1 and 6.12).
var (
	PacketPathCaps               = []Capability{CapBPF, CapNetAdmin, CapPerfmon}
	SocketPathCaps               = []Capability{CapBPF, CapPerfmon, CapDACReadSearch}
	SocketPathCapsPerfRestricted = []Capability{CapSysAdmin, CapDACReadSearch}
)

// AgentCaps is what `tcplens agent` runs with as uid 0 without full root:
// the packet path's and the socket path's sets, and for top's model of
// every connection in every network namespace two more:
//   - CAP_SYS_ADMIN: sock_diag is asked from a socket made inside each
//     namespace, and setns into a network namespace needs CAP_SYS_ADMIN
//     (netns_install); it also covers kernel.perf_event_paranoid=3,
//     mounting tracefs when it is missing, and BPF run-time statistics;
//   - CAP_SYS_PTRACE: /proc/PID/ns/net and /proc/PID/fd of other processes
//     (namespaces and sockets' owners) are behind ptrace_may_access, which
//     refuses a process with capabilities the reader lacks.
//
// CAP_DAC_READ_SEARCH also opens /proc/PID/fd of other users' processes
// (mode 0500), which names a socket's owner. deploy's caps_test.go measures
// each of these by taking it away. CAP_SYS_ADMIN stands in for CAP_BPF and
// CAP_PERFMON in the kernel; they are listed anyway so the set says what
// each part needs (not for CAP_NET_ADMIN: netlink TC wants it itself). deploy/ (the DaemonSet and the
// systemd unit) grants exactly this set; deploy's tests compare them.
var AgentCaps = []Capability{CapBPF, CapNetAdmin, CapPerfmon, CapDACReadSearch, CapSysAdmin, CapSysPtrace}

// PrivilegeError says which of a command's capabilities are missing. It
// matches ErrPrivileges, which the CLI turns into exit code 2.
type PrivilegeError struct {
	Needs, Missing []Capability
	Why            string // what failed, when a trial showed it
}

func (e *PrivilegeError) Error() string {
	msg := "needs root, or " + capList(e.Needs)
	if len(e.Missing) > 0 {
		msg += "; missing " + capList(e.Missing)
	}
	if e.Why != "" {
		msg = e.Why + ": " + msg
	}
	return msg
}

func (e *PrivilegeError) Is(target error) bool { return target == ErrPrivileges }

func capList(cs []Capability) string {
	names := make([]string, len(cs))
	for i, c := range cs {
		names[i] = c.Name
	}
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// effectiveCaps reads this process's effective capability set.
func effectiveCaps() (uint64, error) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if hex, ok := strings.CutPrefix(line, "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
		}
	}
	return 0, errors.New("no CapEff in /proc/self/status")
}

// has reports whether eff grants c, counting what the kernel lets
// CAP_SYS_ADMIN stand in for (bpf_capable, perfmon_capable, and the net
// admin check of program loading) and CAP_DAC_OVERRIDE for reads.
func has(eff uint64, c Capability) bool {
	held := func(c Capability) bool { return eff&(1<<c.Bit) != 0 }
	switch c {
	case CapBPF, CapPerfmon, CapNetAdmin:
		return held(c) || held(CapSysAdmin)
	case CapDACReadSearch:
		return held(c) || held(CapDACOverride)
	}
	return held(c)
}

// MissingCaps lists the capabilities of command that this process lacks.
// CAP_DAC_READ_SEARCH is tried rather than required: uid 0 reads tracefs
// as its owner. So is the perf_event_open that attaching a tracepoint
// needs. Nothing is missing when the capabilities cannot be read: the
// kernel decides then.
func MissingCaps(command string) []Capability {
	_, missing := capsNeeded(command)
	return missing
}

// capsNeeded is the set command needs on this kernel, and what of it this
// process lacks.
func capsNeeded(command string) (needs, missing []Capability) {
	needs = CommandCaps[command]
	eff, err := effectiveCaps()
	if err != nil {
		return needs, nil
	}
	if slices.Contains(needs, CapDACReadSearch) && eff&(1<<CapSysAdmin.Bit) == 0 {
		// Try perf_event_open where CAP_PERFMON should be enough for it;
		// without CAP_PERFMON the trial fails anyway, so go by the sysctl.
		restricted := PerfEventsRestricted()
		if has(eff, CapPerfmon) {
			restricted = perfEventsRefused()
		}
		if restricted {
			needs = SocketPathCapsPerfRestricted
		}
	}
	for _, c := range needs {
		if c == CapDACReadSearch {
			if !tracefsReadable() {
				missing = append(missing, c)
			}
			continue
		}
		if !has(eff, c) {
			missing = append(missing, c)
		}
	}
	return needs, missing
}

// perfEventsRefused tries a system-wide perf event, as attaching a
// tracepoint opens one, and reports whether the kernel refused it for want
// of privileges.
func perfEventsRefused() bool {
	attr := unix.PerfEventAttr{Type: unix.PERF_TYPE_SOFTWARE, Config: unix.PERF_COUNT_SW_DUMMY,
		Size: uint32(unsafe.Sizeof(unix.PerfEventAttr{}))}
	fd, err := unix.PerfEventOpen(&attr, -1, 0, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err == nil {
		unix.Close(fd)
		return false
	}
	return errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM)
}

// PerfEventsRestricted reports whether kernel.perf_event_paranoid is 3 or
// more, where Debian's and Ubuntu's kernels want CAP_SYS_ADMIN for
// perf_event_open (upstream treats 3 as 2).
func PerfEventsRestricted() bool {
	b, err := os.ReadFile("/proc/sys/kernel/perf_event_paranoid")
	if err != nil {
		return false
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return err == nil && n >= 3
}

// tracefsReadable reports whether this process can read tracepoint IDs;
// an unmounted tracefs is EnsureTracefs's business, not this one's.
func tracefsReadable() bool {
	_, err := os.ReadDir(tracefsPath + "/events")
	return !errors.Is(err, os.ErrPermission)
}

// CheckPrivileges refuses, before anything is loaded, a command whose
// capabilities this process does not hold, and mounts tracefs for the
// socket-path commands when it is missing (which needs CAP_SYS_ADMIN).
func CheckPrivileges(command string) error {
	if _, ok := CommandCaps[command]; !ok {
		return fmt.Errorf("no privileges listed for command %q", command)
	}
	var missing []Capability
	tracefs := false
	needs, all := capsNeeded(command)
	for _, c := range all {
		if c == CapDACReadSearch {
			tracefs = true
		} else {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		perr := &PrivilegeError{Needs: needs, Missing: missing}
		if len(missing) == 1 && missing[0] == CapSysAdmin {
			perr.Why = "the kernel refuses perf_event_open, which attaching a tracepoint needs (kernel.perf_event_paranoid=3 allows it only to CAP_SYS_ADMIN on Debian and Ubuntu; 2 allows CAP_PERFMON)"
		}
		return perr
	}
	for _, c := range needs {
		if c != CapDACReadSearch {
			continue
		}
		if _, err := EnsureTracefs(); err != nil {
			return err
		}
		if tracefs || !tracefsReadable() {
			return &PrivilegeError{Needs: needs, Missing: []Capability{CapDACReadSearch},
				Why: "cannot read tracepoint IDs in " + tracefsPath + " (mode 0700, root's)"}
		}
	}
	return nil
}
