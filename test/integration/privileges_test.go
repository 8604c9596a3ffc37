package integration

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tcplens/tcplens/internal/probe"
	"github.com/tcplens/tcplens/internal/testnet"
	"github.com/tcplens/tcplens/internal/testutil"
)

func lookSetpriv(t *testing.T) string {
	t.Helper()
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		testutil.SkipUnlessRequired(t, "setpriv (util-linux) is not installed")
	}
	return setpriv
}

// runPrivCmd runs cmd for at most 15 s and returns its exit code, stdout
// and stderr.
func runPrivCmd(t *testing.T, cmd *exec.Cmd) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if cmd.Stdout == nil {
		cmd.Stdout = &stdout
	}
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("still running after 15 s; stderr: %s", stderr.String())
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

// Without capabilities every command that loads BPF exits 2 with one line
// that says what it needs, and attaches nothing. The process keeps uid 0
// but setpriv empties its capability sets, as a container without
// CAP_BPF/CAP_NET_ADMIN would.
func TestNoPrivilegesExitsTwo(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	setpriv := lookSetpriv(t)
	p := testnet.NewPair(t)
	bin := testnet.Tcplens(t)
	for _, args := range commandsUnderTest(p.B.Link) {
		t.Run(args[0], func(t *testing.T) {
			cmd := p.B.Command(setpriv, append([]string{"--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--", bin}, args...)...)
			code, stdout, msg := runPrivCmd(t, cmd)
			if code != 2 {
				t.Errorf("exit code %d, want 2; stderr: %s", code, msg)
			}
			if strings.Count(msg, "\n") != 1 || !strings.Contains(msg, "needs root, or CAP_") || !strings.Contains(msg, "; missing CAP_") {
				t.Errorf("stderr should be one line naming the privileges needed, got %q", msg)
			}
			if stdout != "" {
				t.Errorf("stdout should be empty, got %q", stdout)
			}
			if att := p.B.Attachments(t); !att.Empty() {
				t.Errorf("attached without privileges: %v", att)
			}
		})
	}
}

// withStdout sends cmd's standard output to w instead of runPrivCmd's buffer.
func withStdout(cmd *exec.Cmd, w io.Writer) *exec.Cmd {
	cmd.Stdout = w
	return cmd
}

// nobodyCopy copies the test binary where user nobody can run it: the
// build directory is private to root.
func nobodyCopy(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "tcplens-priv-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(testnet.Tcplens(t))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	bin := filepath.Join(dir, "tcplens")
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return bin
}

// capArgs gives setpriv's arguments for running as nobody with exactly
// caps: inheritable and ambient so they survive the exec, bounding so that
// nothing else can be gained.
func capArgs(caps []probe.Capability) []string {
	list := "-all"
	for _, c := range caps {
		list += ",+" + strings.ToLower(strings.TrimPrefix(c.Name, "CAP_"))
	}
	return []string{"--reuid=nobody", "--regid=nogroup", "--clear-groups",
		"--inh-caps=" + list, "--ambient-caps=" + list, "--bounding-set=" + list}
}

// Each command runs as user nobody with exactly the capabilities that
// probe.CommandCaps (and the README) lists for it, and refuses with exit 2
// and one line naming the missing capability when any one is taken away.
// The oracle is the kernel: it is the kernel that refuses a load or an
// attach when a capability is missing, so a set listed too small fails
// the first half, and one listed too large, the second (the command
// would still run without it).
func TestMinimalCapabilities(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	setpriv := lookSetpriv(t)
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatal(err)
	}
	p := testnet.NewPair(t)
	bin := nobodyCopy(t)
	for _, args := range commandsUnderTest(p.B.Link) {
		packetPath := len(args) > 1
		caps := probe.CommandCaps[args[0]]
		if len(caps) == 0 {
			t.Fatalf("%s: no capabilities listed in probe.CommandCaps", args[0])
		}
		command := func(caps []probe.Capability, extra ...string) *exec.Cmd {
			argv := append(append(append(capArgs(caps), "--", bin), args...), extra...)
			if packetPath {
				return p.B.Command(setpriv, argv...)
			}
			return exec.Command(setpriv, argv...)
		}
		t.Run(args[0], func(t *testing.T) {
			t.Run("exact", func(t *testing.T) {
				code, _, stderr := runPrivCmd(t, command(caps, "--duration", "300ms"))
				if code != 0 {
					t.Errorf("with %v as nobody: exit %d, want 0; stderr: %s", caps, code, stderr)
				}
			})
			for i, drop := range caps {
				less := append(append([]probe.Capability{}, caps[:i]...), caps[i+1:]...)
				t.Run("without_"+drop.Name, func(t *testing.T) {
					code, stdout, stderr := runPrivCmd(t, command(less, "--duration", "300ms"))
					if code != 2 {
						t.Errorf("without %s: exit %d, want 2; stderr: %s", drop.Name, code, stderr)
					}
					if strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "missing "+drop.Name) {
						t.Errorf("stderr should be one line naming %s as missing, got %q", drop.Name, stderr)
					}
					if stdout != "" {
						t.Errorf("stdout should be empty, got %q", stdout)
					}
					if packetPath {
						if att := p.B.Attachments(t); !att.Empty() {
							t.Errorf("attached without %s: %v", drop.Name, att)
						}
					}
				})
			}
		})
	}
}

// commandsUnderTest is every command that loads BPF, with the arguments it
// needs to start: the packet path on link, and every socket-path command
// that probe describes, so a new command is tested without a new line here.
func commandsUnderTest(link string) [][]string {
	cmds := [][]string{
		{"flags", "-i", link, "--hook", "tc"},
		{"syn", "-i", link, "--hook", "xdp"},
		{"capture", "-i", link, "--hook", "tc"},
	}
	for _, c := range probe.SockCommands() {
		cmds = append(cmds, []string{c})
	}
	return cmds
}
