package integration

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tcplens/tcplens/internal/testnet"
	"github.com/tcplens/tcplens/internal/testutil"
)

// Without capabilities every command that loads BPF exits 2 with one line
// that says what it needs, and attaches nothing. The process keeps uid 0
// but setpriv empties its capability sets, as a container without
// CAP_BPF/CAP_NET_ADMIN would.
func TestNoPrivilegesExitsTwo(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) not installed")
	}
	p := testnet.NewPair(t)
	bin := testnet.Tcplens(t)
	for _, args := range [][]string{
		{"flags", "-i", p.B.Link, "--hook", "tc"},
		{"syn", "-i", p.B.Link, "--hook", "xdp"},
		{"retrans"},
		{"rtt"},
		{"states"},
		{"resets"},
		{"drops"},
	} {
		t.Run(args[0], func(t *testing.T) {
			cmd := p.B.Command(setpriv, append([]string{"--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--", bin}, args...)...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err = <-done:
			case <-time.After(15 * time.Second):
				cmd.Process.Kill()
				<-done
				t.Fatalf("still running after 15 s without privileges; stderr: %s", stderr.String())
			}
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != 2 {
				t.Errorf("exit code %d, want 2; stderr: %s", code, stderr.String())
			}
			msg := stderr.String()
			if strings.Count(msg, "\n") != 1 || !strings.Contains(msg, "needs root, or CAP_BPF") {
				t.Errorf("stderr should be one line naming the privileges needed, got %q", msg)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout should be empty, got %q", stdout.String())
			}
			if att := p.B.Attachments(t); !att.Empty() {
				t.Errorf("attached without privileges: %v", att)
			}
		})
	}
}
