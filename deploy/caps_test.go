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

// TestAgentCapsSeeEveryNamespace runs `tcplens top` (the per-connection
// model the agent serves) as uid 0 with exactly AgentCaps, as the DaemonSet
// and the unit do, and checks that it sees a listener in a network
// namespace that has no name, only a root process in it (a container's, as
// a pod's would be). Without CAP_SYS_ADMIN (setns) or CAP_SYS_PTRACE
// (/proc/PID/ns/net of a process with more capabilities) the same run does
// not see it: both are needed, not just allowed. The oracle is the
// namespace's inode, read by this (fully privileged) process.
func TestAgentCapsSeeEveryNamespace(t *testing.T) {
	testutil.RequirePrivileged(t)
	for _, tool := range []string{"setpriv", "unshare", "nsenter", "ss", "iperf3"} {
		if _, err := exec.LookPath(tool); err != nil {
			testutil.SkipUnlessRequired(t, tool+" not found (util-linux, iproute2, iperf3)")
		}
	}
	bin := testnet.Tcplens(t)

	// A listener in a new, unnamed network namespace, held by a root
	// process with every capability.
	srv := exec.Command("unshare", "--net", "--", "iperf3", "-s", "-p", "5201")
	var srvOut bytes.Buffer
	srv.Stdout, srv.Stderr = &srvOut, &srvOut
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
	nsPath := fmt.Sprintf("/proc/%d/ns/net", srv.Process.Pid)
	var ino uint64
	testnet.WaitFor(t, 10*time.Second, "iperf3 listening in its own namespace", func() bool {
		var self, st syscall.Stat_t
		if syscall.Stat("/proc/self/ns/net", &self) != nil || syscall.Stat(nsPath, &st) != nil || st.Ino == self.Ino {
			return false // unshare has not made it yet
		}
		ino = st.Ino
		out, err := exec.Command("nsenter", "--net="+nsPath, "ss", "-Hltn", "sport = :5201").Output()
		return err == nil && len(bytes.TrimSpace(out)) > 0
	})

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
	for _, tc := range []struct {
		name   string
		caps   []string
		events bool // top's tracepoints too: they attach with the set
		sees   bool
	}{
		{"AgentCaps", caps, true, true},
		{"without sys_admin", without("sys_admin"), false, false},
		{"without sys_ptrace", without("sys_ptrace"), false, false},
		{"net_admin only", []string{"net_admin"}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sees, missing := topSees(t, bin, tc.caps, tc.events, ino)
			if sees != tc.sees {
				t.Errorf("with %s, top sees the listener in namespace %d: %v, want %v", strings.Join(tc.caps, ","), ino, sees, tc.sees)
			}
			if tc.events && (len(missing) == 0) != tc.sees {
				t.Errorf("with %s, events missing: %q", strings.Join(tc.caps, ","), missing)
			}
		})
	}
}

// topSees runs one refresh of top with only caps in its bounding set (uid
// 0 keeps them all permitted and effective) and reports whether it listed
// a LISTEN socket on port 5201 in namespace ino, and which of its event
// sources it could not attach (with events).
func topSees(t *testing.T, bin string, caps []string, events bool, ino uint64) (sees bool, missing []string) {
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
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec struct {
			Type          string   `json:"type"`
			EventsMissing []string `json:"events_missing"`
			NetNS         uint64   `json:"netns"`
			LPort         int      `json:"lport"`
			State         string   `json:"state"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) != nil {
			continue
		}
		if rec.Type == "conn" && rec.NetNS == ino && rec.LPort == 5201 && rec.State == "LISTEN" {
			sees = true
		}
		missing = append(missing, rec.EventsMissing...)
	}
	return sees, missing
}
