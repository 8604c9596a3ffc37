package integration

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/tcplens/tcplens/internal/testnet"
	"github.com/tcplens/tcplens/internal/testutil"
)

// kernelCommands are the commands that load BPF programs: doctor must give
// a verdict on each.
var kernelCommands = []string{"drops", "flags", "resets", "retrans", "rtt", "states", "syn"}

// TestDoctorTellsTheTruth runs doctor, then each command for a second with
// its default flags, on whatever kernel the suite runs on (the kernel
// matrix boots several): a command doctor calls ready must start, attach
// and exit 0 with a summary; one it calls not ready must refuse to start.
// The oracle is the command's own behaviour, not doctor's probes.
func TestDoctorTellsTheTruth(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	p := testnet.NewPair(t)
	// flags and syn watch the default route's interface when no -i is
	// given, as here: give B one, so their ready path is the one tested
	// (TestDoctorPacketCommandsNeedDefaultRoute covers the other).
	p.B.Run(t, "ip", "route", "add", "default", "via", p.A.IPv4.String(), "dev", p.B.Link)
	doc := runBounded(t, p.B, "doctor", "-o", "json")
	ready := map[string]bool{}
	for _, rec := range doc.Records(t) {
		if rec.Type() != "command" {
			continue
		}
		r, ok := rec["ready"].(bool)
		if !ok {
			t.Fatalf("doctor: command record without a boolean ready: %v", rec)
		}
		ready[rec.String(t, "command")] = r
	}
	for _, cmd := range kernelCommands {
		if _, ok := ready[cmd]; !ok {
			t.Errorf("doctor gives no verdict on %s; stdout:\n%s", cmd, doc.Stdout)
		}
	}
	t.Logf("doctor (exit %d): %v", doc.ExitCode, ready)

	for _, cmd := range kernelCommands {
		want, ok := ready[cmd]
		if !ok {
			continue
		}
		t.Run(cmd, func(t *testing.T) {
			t.Parallel()
			args := []string{cmd, "-o", "json", "--duration", "1s"}
			res := runBounded(t, p.B, args...)
			started := res.ExitCode == 0 && strings.Contains(res.Stdout, `"type":"summary"`)
			switch {
			case want && !started:
				t.Errorf("doctor says %s is ready, but `tcplens %s` exited %d; stderr: %s",
					cmd, strings.Join(args, " "), res.ExitCode, res.Stderr)
			case !want && started:
				t.Errorf("doctor says %s is not ready, but `tcplens %s` ran and exited 0", cmd, strings.Join(args, " "))
			case !want && res.ExitCode == 0:
				t.Errorf("doctor says %s is not ready; `tcplens %s` exited 0 without a summary", cmd, strings.Join(args, " "))
			}
		})
	}
}

// runBounded runs tcplens in ns to completion, as ns.RunTcplens does, but
// allows 90 s instead of 15 under an emulated CPU: there loading and
// verifying the programs of seven commands at once can take longer than a
// --duration 1s run is worth on hardware (16 s for states on 6.12 under TCG
// on a busy host).
func runBounded(t *testing.T, ns *testnet.NS, args ...string) testnet.Result {
	t.Helper()
	limit := 15 * time.Second
	if testutil.Emulated() != "" {
		limit = 90 * time.Second
	}
	cmd := ns.Command(testnet.Tcplens(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start tcplens: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(limit):
		cmd.Process.Kill()
		<-done
		t.Fatalf("tcplens %s still running after %v; killed. stderr: %s", strings.Join(args, " "), limit, stderr.String())
	}
	return testnet.Result{ExitCode: cmd.ProcessState.ExitCode(), Stdout: stdout.String(), Stderr: stderr.String()}
}
