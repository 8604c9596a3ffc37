package cli

import (
	"bytes"
	"strings"
	"testing"
)

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = Main(args, Env{Stdout: &out, Stderr: &errb})
	return code, out.String(), errb.String()
}

// Bad usage exits 2 with exactly one line saying what and why. None of these
// get as far as loading BPF, so they need no privileges.
func TestBadUsageExitsTwoWithOneLine(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"flags", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"flags", "extra"}, `unexpected argument "extra"`},
		{[]string{"flags", "--interval", "soon"}, `invalid argument "soon"`},
		{[]string{"flags", "--interval", "0s"}, "--interval must be positive"},
		{[]string{"flags", "--duration", "-1s"}, "--duration must not be negative"},
		{[]string{"flags", "-c", "-3"}, "--count must not be negative"},
		{[]string{"flags", "-o", "xml"}, `unknown output format "xml"`},
		{[]string{"flags", "--hook", "tcx"}, `unknown hook "tcx"`},
		{[]string{"flags", "--drop-syn-port", "0"}, "--drop-syn-port 0: a port is 1 to 65535"},
		{[]string{"flags", "--drop-syn-port", "70000"}, "--drop-syn-port 70000: a port is 1 to 65535"},
		{[]string{"flags", "-i", "no-such-if0"}, "interface no-such-if0: no such network device"},
		{[]string{"flags", "-i", "lo", "-i", "lo"}, "interface lo given twice"},
		{[]string{"syn", "--max-tuples", "0"}, "--max-tuples and --max-sources must be at least 1"},
		{[]string{"syn", "--top", "-1"}, "--top must not be negative"},
		{[]string{"syn", "-i", "no-such-if0"}, "interface no-such-if0: no such network device"},
		{[]string{"doctor", "-o", "yaml"}, `unknown output format "yaml"`},
		{[]string{"retrans", "--port", "0"}, "--port 0: a port is 1 to 65535"},
		{[]string{"states", "--port", "65536"}, "--port 65536: a port is 1 to 65535"},
		{[]string{"resets", "-4", "-6"}, "-4 and -6 exclude each other"},
		{[]string{"drops", "--host", "not-an-ip"}, `--host "not-an-ip": not an IP address or CIDR prefix`},
		{[]string{"rtt", "-4", "--host", "fd00::1"}, "does not match the address family"},
		{[]string{"rtt", "--sample", "0s"}, "--sample must be positive"},
		{[]string{"rtt", "--cwnd-change", "101"}, "--cwnd-change 101: a percentage is 0 to 100"},
		{[]string{"rtt", "--histogram-by", "rport"}, "--histogram-by needs --histogram"},
		{[]string{"drops", "--skip-reason", "NO_SUCH_REASON"}, "--skip-reason"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			code, stdout, stderr := runCLI(c.args...)
			if code != ExitUsage {
				t.Errorf("exit code %d, want %d (stderr %q)", code, ExitUsage, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout should be empty, got %q", stdout)
			}
			if strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") {
				t.Errorf("stderr should be one line, got %q", stderr)
			}
			if !strings.Contains(stderr, c.want) {
				t.Errorf("stderr %q does not say %q", stderr, c.want)
			}
		})
	}
}

func TestHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"--help"}, {"flags", "--help"}, {"syn", "-h"}, {"doctor", "--help"}} {
		code, stdout, _ := runCLI(args...)
		if code != ExitOK {
			t.Errorf("%v: exit %d, want 0", args, code)
		}
		if !strings.Contains(stdout, "tcplens") {
			t.Errorf("%v: help does not mention tcplens: %q", args, stdout)
		}
	}
	_, stdout, _ := runCLI("flags", "--help")
	for _, flag := range []string{"--interface", "--output", "--interval", "--duration", "--count", "--ready-file", "--hook", "--drop-syn-port"} {
		if !strings.Contains(stdout, flag) {
			t.Errorf("flags --help does not list %s", flag)
		}
	}
}

func TestVersion(t *testing.T) {
	code, stdout, _ := runCLI("version")
	if code != 0 || !strings.HasPrefix(stdout, "tcplens ") {
		t.Errorf("version: exit %d, output %q", code, stdout)
	}
}
