package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcplens/tcplens/internal/probe"
	"github.com/tcplens/tcplens/internal/testnet"
	"github.com/tcplens/tcplens/internal/testutil"
)

// listener is an iperf3 server listening on port 5201 in a network
// namespace of its own that has no name, as a pod's would be.
type listener struct {
	pid int
	ino uint64 // its namespace's inode, read by this fully privileged test
}

// startListener starts it through unshare, as root with every capability
// or, with asUser, as user nobody (65534).
func startListener(t *testing.T, asUser bool) listener {
	t.Helper()
	args := []string{"--net", "--"}
	if asUser {
		args = append(args, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--")
	}
	// unshare and setpriv exec what follows: the PID is iperf3's.
	srv := exec.Command("unshare", append(args, "iperf3", "-s", "-p", "5201")...)
	var out bytes.Buffer
	srv.Stdout, srv.Stderr = &out, &out
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { srv.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			srv.Process.Kill()
			<-done
		}
	})
	l := listener{pid: srv.Process.Pid}
	nsPath := fmt.Sprintf("/proc/%d/ns/net", l.pid)
	testnet.WaitFor(t, 10*time.Second, "iperf3 listening in its own namespace", func() bool {
		var self, st syscall.Stat_t
		if syscall.Stat("/proc/self/ns/net", &self) != nil || syscall.Stat(nsPath, &st) != nil || st.Ino == self.Ino {
			return false // unshare has not made it yet
		}
		l.ino = st.Ino
		out, err := exec.Command("nsenter", "--net="+nsPath, "ss", "-Hltn", "sport = :5201").Output()
		return err == nil && len(bytes.TrimSpace(out)) > 0
	})
	return l
}

// TestAgentCapsSeeEveryNamespace runs `tcplens top` (the per-connection
// model the agent serves) as uid 0 with exactly AgentCaps, as the DaemonSet
// and the unit do. It must see a listener in each of two unnamed network
// namespaces, one held by a root process with every capability and one by
// user nobody, each with its owner. Taking one capability away shows what
// it is for: without CAP_SYS_ADMIN (setns) or CAP_SYS_PTRACE
// (/proc/PID/ns/net of a process with other credentials) neither is seen;
// without CAP_DAC_READ_SEARCH nobody's socket has no owner (its
// /proc/PID/fd is nobody's, mode 0500). The oracle is each namespace's
// inode and each server's PID, as this process started them.
func TestAgentCapsSeeEveryNamespace(t *testing.T) {
	testutil.RequirePrivileged(t)
	for _, tool := range []string{"setpriv", "unshare", "nsenter", "ss", "iperf3"} {
		if _, err := exec.LookPath(tool); err != nil {
			testutil.SkipUnlessRequired(t, tool+" not found (util-linux, iproute2, iperf3)")
		}
	}
	bin := testnet.Tcplens(t)
	root, nobody := startListener(t, false), startListener(t, true)

	var caps []string
	for _, c := range probe.AgentCaps {
		caps = append(caps, strings.ToLower(strings.TrimPrefix(c.Name, "CAP_")))
	}
	without := func(drop string) []string {
		var out []string
		for _, c := range caps {
			if c != drop {
				out = append(out, c)
			}
		}
		return out
	}
	const unseen = -1
	for _, tc := range []struct {
		name   string
		caps   []string
		events bool // top's tracepoints too: they attach with the set
		root   int  // owner PID top shows for root's listener (0: none)
		nobody int  // and for nobody's
	}{
		{"AgentCaps", caps, true, root.pid, nobody.pid},
		{"without sys_admin", without("sys_admin"), false, unseen, unseen},
		{"without sys_ptrace", without("sys_ptrace"), false, unseen, unseen},
		{"without dac_read_search", without("dac_read_search"), false, root.pid, 0},
		{"net_admin only", []string{"net_admin"}, true, unseen, unseen},
	} {
		t.Run(tc.name, func(t *testing.T) {
			owners, missing := topOwners(t, bin, tc.caps, tc.events)
			for _, l := range []struct {
				who  string
				ino  uint64
				want int
			}{{"root", root.ino, tc.root}, {"nobody", nobody.ino, tc.nobody}} {
				got, seen := owners[l.ino]
				if !seen {
					got = unseen
				}
				if got != l.want {
					t.Errorf("with %s, %s's listener in namespace %d: owner %d, want %d (-1: not seen, 0: no owner)",
						strings.Join(tc.caps, ","), l.who, l.ino, got, l.want)
				}
			}
			if tc.events && (len(missing) == 0) != (tc.root != unseen) {
				t.Errorf("with %s, events missing: %q", strings.Join(tc.caps, ","), missing)
			}
		})
	}
}

// topOwners runs one refresh of top with only caps in its bounding set
// (uid 0 keeps them all permitted and effective) and returns, per network
// namespace, the owner PID of the LISTEN socket on port 5201 it listed
// there (0: no owner shown), and which of its event sources it could not
// attach (with events).
func topOwners(t *testing.T, bin string, caps []string, events bool) (owners map[uint64]int, missing []string) {
	t.Helper()
	bounding := "-all"
	for _, c := range caps {
		bounding += ",+" + c
	}
	args := []string{"--bounding-set=" + bounding, "--inh-caps=-all", "--",
		bin, "top", "-o", "json", "-c", "1", "--lport", "5201"}
	if !events {
		args = append(args, "--no-events")
	}
	cmd := exec.Command("setpriv", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, stderr.String())
	}
	owners = map[uint64]int{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec struct {
			Type          string   `json:"type"`
			EventsMissing []string `json:"events_missing"`
			NetNS         uint64   `json:"netns"`
			LPort         int      `json:"lport"`
			State         string   `json:"state"`
			PID           int      `json:"pid"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) != nil {
			continue
		}
		if rec.Type == "conn" && rec.LPort == 5201 && rec.State == "LISTEN" {
			owners[rec.NetNS] = rec.PID
		}
		missing = append(missing, rec.EventsMissing...)
	}
	return owners, missing
}

// TestAgentCapsAttachPacketPath: with AgentCaps the packet path attaches
// through netlink TC (the path of kernels before 6.6), and without
// CAP_NET_ADMIN it cannot: CAP_SYS_ADMIN stands in for CAP_BPF and
// CAP_PERFMON, but netlink's qdisc and filter changes want CAP_NET_ADMIN
// itself. The oracle is the kernel's answer (exit status and the hook
// flags reports) in a namespace of the test's own.
func TestAgentCapsAttachPacketPath(t *testing.T) {
	testutil.RequirePrivileged(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		testutil.SkipUnlessRequired(t, "setpriv not found (util-linux)")
	}
	bin := testnet.Tcplens(t)
	p := testnet.NewPair(t)
	run := func(caps []string) (string, int) {
		bounding := "-all"
		for _, c := range caps {
			bounding += ",+" + c
		}
		cmd := p.A.Command("setpriv", "--bounding-set="+bounding, "--inh-caps=-all", "--",
			bin, "flags", "-i", p.A.Link, "--hook", "tc-netlink", "--duration", "300ms", "-o", "json")
		out, err := cmd.CombinedOutput()
		code := 0
		if err != nil {
			code = -1
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
		}
		return string(out), code
	}
	var caps, noNetAdmin []string
	for _, c := range probe.AgentCaps {
		name := strings.ToLower(strings.TrimPrefix(c.Name, "CAP_"))
		caps = append(caps, name)
		if c != probe.CapNetAdmin {
			noNetAdmin = append(noNetAdmin, name)
		}
	}
	if out, code := run(caps); code != 0 || !strings.Contains(out, `"hook":"tc/netlink"`) {
		t.Errorf("flags --hook tc-netlink with AgentCaps: exit %d, want 0 and hook tc/netlink:\n%s", code, out)
	}
	if out, code := run(noNetAdmin); code != 2 || !strings.Contains(out, "CAP_NET_ADMIN") {
		t.Errorf("flags --hook tc-netlink without CAP_NET_ADMIN: exit %d, want 2 naming CAP_NET_ADMIN:\n%s", code, out)
	}
}
