package cli

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestAgentConfigFlagsWin: the file sets what the command line leaves
// alone; a flag given wins over its key.
func TestAgentConfigFlagsWin(t *testing.T) {
	cfg := writeConfig(t, "listen: 0.0.0.0:1\ninterface: [lo]\ninterval: 2s\nper-remote-port: true\nper-remote-port-limit: 7\nport: [80, 443]\n")
	env := Env{Stdout: io.Discard, Stderr: io.Discard}
	f, o, err := parseAgentFlags(env, []string{"--config", cfg, "--listen", "127.0.0.1:2"})
	if err != nil {
		t.Fatal(err)
	}
	if o.Listen != "127.0.0.1:2" {
		t.Errorf("listen %q: the flag should win", o.Listen)
	}
	if strings.Join(o.Interfaces, ",") != "lo" || f.interval.String() != "2s" || o.PerRemotePort != 7 || len(o.Filter.Ports) != 2 {
		t.Errorf("from the file: interfaces %v, interval %v, port cap %d, ports %v", o.Interfaces, f.interval, o.PerRemotePort, o.Filter.Ports)
	}
}

// TestAgentBadConfig: a bad file is bad usage (exit 2), said in one line
// that names the line.
func TestAgentBadConfig(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"listen: a\nno-such-flag: 1\n", "line 2: no-such-flag: not a flag of tcplens agent"},
		{"interface: [lo]\ninterval: soon\n", "line 2: interval"},
		{"interface: [lo]\nlisten: [a, b]\n", "line 2: listen: want one value"},
		{"interface: [lo]\nevents: [nope]\n", "unknown source"},
		{"interface: [lo]\n  bad: [\n", "line 1: did not find expected key"},
		{"interface: [lo]\nconfig: other.yaml\n", "line 2: config"},
	} {
		cfg := writeConfig(t, tc.yaml)
		_, _, err := parseAgentFlags(Env{Stdout: io.Discard, Stderr: io.Discard}, []string{"--config", cfg})
		var uerr usageError
		if !errors.As(err, &uerr) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: error %v, want a one-line usage error with %q", tc.yaml, err, tc.want)
		}
	}
}

// TestAgentExampleConfig: deploy/agent.yaml with every option uncommented
// (its defaults and examples) is a valid config.
func TestAgentExampleConfig(t *testing.T) {
	b, err := os.ReadFile("../../deploy/agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	key := regexp.MustCompile(`^#([a-z][a-z0-9-]*:.*|  - .*)$`)
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if key.MatchString(l) {
			l = l[1:]
			if strings.HasPrefix(l, "web-config-file:") {
				continue // names a file this machine does not have
			}
			if strings.HasPrefix(l, "  - ") {
				l = "  - lo" // an interface this machine has
			}
			lines = append(lines, l)
		}
	}
	cfg := writeConfig(t, strings.Join(lines, "\n")+"\n")
	if _, _, err := parseAgentFlags(Env{Stdout: io.Discard, Stderr: io.Discard}, []string{"--config", cfg}); err != nil {
		t.Errorf("uncommented example: %v\n%s", err, strings.Join(lines, "\n"))
	}
}

// TestAgentGuardRulesBad: a bad --guard-rules file, a missing one, and the
// guard flags without --guard-rules are bad usage (exit 2), said in one
// line naming the file's line, before anything is loaded (no root needed).
func TestAgentGuardRulesBad(t *testing.T) {
	bad := writeConfig(t, "block: [10.0.0.0/8]\ndrop_port:\n  - 80\n  - 70000\n")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--guard-rules", bad}, "line 4: drop_port: port 70000"},
		{[]string{"--guard-rules", filepath.Join(t.TempDir(), "none.yaml")}, "no such file"},
		{[]string{"--guard-dry-run"}, "need --guard-rules"},
		{[]string{"--guard-force"}, "need --guard-rules"},
	} {
		var stderr strings.Builder
		code := Main(append([]string{"agent", "-i", "lo", "--listen", "127.0.0.1:0"}, tc.args...), Env{Stdout: io.Discard, Stderr: &stderr})
		msg := strings.TrimSpace(stderr.String())
		if code != ExitUsage || !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
			t.Errorf("%v: exit %d, %q; want exit %d and one line with %q", tc.args, code, msg, ExitUsage, tc.want)
		}
	}
}

// TestAgentGuardLockout: rules that block the caller's SSH client need
// --guard-force (guard's own check); --guard-dry-run overrides the file.
func TestAgentGuardLockout(t *testing.T) {
	t.Setenv("SSH_CONNECTION", "198.51.100.7 50000 192.0.2.1 22")
	rules := writeConfig(t, "block: [198.51.100.0/24]\n")
	env := Env{Stdout: io.Discard, Stderr: io.Discard}
	f, _, err := parseAgentFlags(env, []string{"-i", "lo", "--guard-rules", rules})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.guard(); err == nil || !strings.Contains(err.Error(), "lock you out") || !strings.Contains(err.Error(), "198.51.100.7") {
		t.Errorf("blocking the SSH client: %v, want a lockout refusal naming it", err)
	}
	f.guardForce = true
	if g, err := f.guard(); err != nil || g == nil || len(g.Block) != 1 || g.DryRun {
		t.Errorf("with --guard-force: %+v, %v", g, err)
	}
	f.guardForce, f.guardDryRun = false, true
	if g, err := f.guard(); err != nil || g == nil || !g.DryRun {
		t.Errorf("with --guard-dry-run (drops nothing, so no lockout): %+v, %v", g, err)
	}
}
