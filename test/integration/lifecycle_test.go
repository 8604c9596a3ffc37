package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/tcplens/tcplens/internal/testnet"
	"github.com/tcplens/tcplens/internal/testutil"
)

// TestKilledLeavesNothingAttached SIGKILLs tcplens: it attaches through
// bpf_link only, so the kernel detaches everything when the process's
// file descriptors go, without any cleanup code running.
func TestKilledLeavesNothingAttached(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	for _, hook := range []string{"tc", "xdp"} {
		for _, cmd := range []string{"flags", "syn"} {
			t.Run(hook+"/"+cmd, func(t *testing.T) {
				t.Parallel()
				p := testnet.NewPair(t)
				tl := p.B.StartTcplens(t, cmd, "-i", p.B.Link, "-o", "json", "--hook", hook, "--drop-syn-port", "9")
				att := p.B.Attachments(t)
				switch {
				case hook == "tc" && (len(att.TCXIngress) != 1 || att.XDP != ""):
					t.Fatalf("with --hook tc: %v, want one tcx ingress program", att)
				case hook == "xdp" && (att.XDP == "" || len(att.TCXIngress) != 0):
					t.Fatalf("with --hook xdp: %v, want XDP only", att)
				}
				if res := tl.Kill(); res.ExitCode != -1 {
					t.Fatalf("tcplens exit code %d after SIGKILL, want death by signal", res.ExitCode)
				}
				// Links are released as the dead process's files close,
				// which may finish a moment after wait returns.
				var last testnet.Attachments
				testnet.WaitFor(t, 5*time.Second, "nothing attached after SIGKILL", func() bool {
					last = p.B.Attachments(t)
					return last.Empty()
				})
				if out := p.B.Run(t, "ip", "link", "show", "dev", p.B.Link); strings.Contains(out, "xdp") {
					t.Errorf("ip link still shows XDP: %s", out)
				}
			})
		}
	}
}

// TestBadInputExitsTwo checks the CLI contract for bad usage: exit code 2,
// one line on stderr, and nothing attached, also to the interface that
// was valid.
func TestBadInputExitsTwo(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	p := testnet.NewPair(t)
	ifc := p.B.Link
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"unknown interface", []string{"flags", "-i", ifc, "-i", "nosuch0", "--hook", "tc"}},
		{"unknown interface syn", []string{"syn", "-i", "nosuch0", "--hook", "xdp"}},
		{"bad duration", []string{"flags", "-i", ifc, "--duration", "soon"}},
		{"negative duration", []string{"syn", "-i", ifc, "--duration", "-1s"}},
		{"bad port", []string{"flags", "-i", ifc, "--drop-syn-port", "70000"}},
		{"port zero", []string{"syn", "-i", ifc, "--drop-syn-port", "0"}},
		{"port not a number", []string{"flags", "-i", ifc, "--drop-syn-port", "http"}},
		{"bad hook", []string{"flags", "-i", ifc, "--hook", "kprobe"}},
		{"bad max tuples", []string{"syn", "-i", ifc, "--max-tuples", "0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := p.B.RunTcplens(t, tc.args...)
			if res.ExitCode != 2 {
				t.Errorf("exit code %d, want 2; stderr: %s", res.ExitCode, res.Stderr)
			}
			if lines := strings.Split(strings.TrimSuffix(res.Stderr, "\n"), "\n"); len(lines) != 1 || lines[0] == "" {
				t.Errorf("stderr has %d lines, want one reason:\n%s", len(lines), res.Stderr)
			}
			if att := p.B.Attachments(t); !att.Empty() {
				t.Errorf("after bad input: %v", att)
			}
		})
	}
}

// TestDurationExitsCleanly: --duration ends the run with exit code 0 and a
// summary, and detaches.
func TestDurationExitsCleanly(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	p := testnet.NewPair(t)
	for _, hook := range []string{"tc", "xdp"} {
		res := p.B.RunTcplens(t, "flags", "-i", p.B.Link, "-o", "json", "--hook", hook, "--duration", "300ms")
		if res.ExitCode != 0 {
			t.Fatalf("--hook %s --duration 300ms: exit code %d; stderr: %s", hook, res.ExitCode, res.Stderr)
		}
		res.Summary(t, p.B.Link)
		if att := p.B.Attachments(t); !att.Empty() {
			t.Errorf("--hook %s: after a clean exit: %v", hook, att)
		}
	}
}
