package probe

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
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
// privileges_test.go does it on every run, on every kernel of the matrix):
//   - CAP_BPF: maps and programs;
//   - CAP_PERFMON: the verifier allows pointer arithmetic on packets and
//     bpf_probe_read_kernel only to perfmon-capable loaders, and loading a
//     tracing program (raw tracepoints) needs it;
//   - CAP_NET_ADMIN: XDP and TC programs, and attaching them to a device.
//
// The socket path attaches raw tracepoints (BPF_RAW_TRACEPOINT_OPEN), which
// need neither tracefs nor perf_event_open: the same set works where
// kernel.perf_event_paranoid=3 (Debian's and Ubuntu's default, which allows
// perf_event_open only to CAP_SYS_ADMIN).
var (
	PacketPathCaps = []Capability{CapBPF, CapNetAdmin, CapPerfmon}
	SocketPathCaps = []Capability{CapBPF, CapPerfmon}
)

// AgentCaps is what `tcplens agent` runs with as uid 0 without full root:
// the packet path's and the socket path's sets, and for top's model of
// every connection in every network namespace two more:
//
//   - CAP_SYS_ADMIN: sock_diag is asked from a socket made inside each
//     namespace, and setns into a network namespace needs CAP_SYS_ADMIN
//     (netns_install); it also covers BPF run-time statistics;
//
//   - CAP_SYS_PTRACE: /proc/PID/ns/net and /proc/PID/fd of other processes
//     (namespaces and sockets' owners) are behind ptrace_may_access, which
//     refuses a process with capabilities the reader lacks.
//
//   - CAP_DAC_READ_SEARCH: /proc/PID/fd of other users' processes (mode
//     0500) names a socket's owner.
//
// deploy's caps_test.go measures
// each of these by taking it away. CAP_SYS_ADMIN stands in for CAP_BPF and
// CAP_PERFMON in the kernel; they are listed anyway so the set says what
// each part needs (not for CAP_NET_ADMIN: netlink TC wants it itself). deploy/ (the DaemonSet and the
// systemd unit) grants exactly this set; deploy's tests compare them.
var AgentCaps = []Capability{CapBPF, CapNetAdmin, CapPerfmon, CapDACReadSearch, CapSysAdmin, CapSysPtrace}

// PrivilegeError says which of a command's capabilities are missing. It
// matches ErrPrivileges, which the CLI turns into exit code 2.
type PrivilegeError struct {
	Needs, Missing []Capability
}

func (e *PrivilegeError) Error() string {
	msg := "needs root, or " + capList(e.Needs)
	if len(e.Missing) > 0 {
		msg += "; missing " + capList(e.Missing)
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
// Nothing is missing when the capabilities cannot be read: the kernel
// decides then.
func MissingCaps(command string) []Capability {
	eff, err := effectiveCaps()
	if err != nil {
		return nil
	}
	var missing []Capability
	for _, c := range CommandCaps[command] {
		if !has(eff, c) {
			missing = append(missing, c)
		}
	}
	return missing
}

// CheckPrivileges refuses, before anything is loaded, a command whose
// capabilities this process does not hold.
func CheckPrivileges(command string) error {
	needs, ok := CommandCaps[command]
	if !ok {
		return fmt.Errorf("no privileges listed for command %q", command)
	}
	if missing := MissingCaps(command); len(missing) > 0 {
		return &PrivilegeError{Needs: needs, Missing: missing}
	}
	return nil
}
