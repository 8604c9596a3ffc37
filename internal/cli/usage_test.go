package cli

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/spf13/pflag"
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
		{[]string{"--bogus"}, "tcplens top: unknown flag: --bogus"}, // flags without a command are top's
		{[]string{"top", "--group-by", "host"}, `unknown --group-by "host"`},
		{[]string{"top", "-4", "-6"}, "-4 and -6 exclude each other"},
		{[]string{"top", "--events", "resets,bogus"}, `--events: unknown source "bogus"`},
		{[]string{"top", "--interval", "5ms"}, "--interval 5ms: the shortest is 10ms"},
		{[]string{"states", "--timestamp", "utc"}, `--timestamp: unknown timestamp "utc": want wall, relative or none`},
		{[]string{"flags", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"flags", "extra"}, `unexpected argument "extra"`},
		{[]string{"flags", "--interval", "soon"}, `invalid argument "soon"`},
		{[]string{"flags", "--interval", "0s"}, "--interval 0s: the shortest is 10ms"},
		{[]string{"flags", "--interval", "9ms"}, "--interval 9ms: the shortest is 10ms"},
		{[]string{"syn", "--interval", "-1s"}, "--interval -1s: the shortest is 10ms"},
		{[]string{"retrans", "--interval", "5ms"}, "--interval 5ms: the shortest is 10ms"},
		{[]string{"rtt", "--histogram", "--interval", "1ms"}, "--interval 1ms: the shortest is 10ms"},
		{[]string{"rtt", "--interval", "1s"}, "--interval needs --histogram"},
		{[]string{"states", "--interval", "1s"}, "--interval: states prints each transition and lifetime as it comes and has no periodic report"},
		{[]string{"resets", "--interval", "1s"}, "--interval: resets prints each reset as it comes"},
		{[]string{"drops", "--interval", "1s"}, "--interval: drops prints each drop as it comes"},
		{[]string{"flags", "--duration", "-1s"}, "--duration must not be negative"},
		{[]string{"flags", "-c", "-3"}, "--count must not be negative"},
		{[]string{"flags", "-o", "xml"}, `unknown output format "xml"`},
		{[]string{"flags", "--hook", "tc-bpf"}, `unknown hook "tc-bpf"`},
		{[]string{"flags", "--drop-syn-port", "0"}, "--drop-syn-port 0: a port is 1 to 65535"},
		{[]string{"flags", "--drop-syn-port", "70000"}, "--drop-syn-port 70000: a port is 1 to 65535"},
		{[]string{"flags", "-i", "no-such-if0"}, "interface no-such-if0: no such network device"},
		{[]string{"flags", "-i", "lo", "-i", "lo"}, "interface lo given twice"},
		{[]string{"syn", "--max-tuples", "0"}, "--max-tuples 0: must be 1 to 1048576"},
		{[]string{"syn", "--max-tuples", "4294967295"}, "--max-tuples 4294967295: must be 1 to 1048576"},
		{[]string{"syn", "--max-sources", "1048577"}, "--max-sources 1048577: must be 1 to 1048576"},
		{[]string{"syn", "--source-threshold", "0"}, "--source-threshold 0: must be 1 to 1048576"},
		{[]string{"syn", "--top", "-1"}, "--top must not be negative"},
		{[]string{"syn", "--by", "port"}, "--by port: one or more of tuple, source, signature, comma-separated"},
		{[]string{"syn", "--by", "signature,tuples"}, "--by tuples: one or more of tuple, source, signature, comma-separated"},
		{[]string{"syn", "--by", ""}, "--by: name at least one of tuple, source, signature"},
		{[]string{"syn", "--max-signatures", "0"}, "--max-signatures 0: must be 1 to 1048576"},
		{[]string{"syn", "-i", "no-such-if0"}, "interface no-such-if0: no such network device"},
		{[]string{"doctor", "-o", "yaml"}, `unknown output format "yaml"`},
		{[]string{"flags", "--filter", "udp port 53"}, `filter expression "udp port 53": "udp" is not supported`},
		{[]string{"flags", "--port", "0"}, "--port 0: a port is 1 to 65535"},
		{[]string{"syn", "-4", "-6"}, "-4 and -6 exclude each other"},
		{[]string{"syn", "-6", "--host", "10.0.0.1"}, "--host 10.0.0.1 does not match the address family"},
		{[]string{"capture", "tcp[13]", "&", "2", "!=", "0"}, `"tcp[13]" is not supported`},
		{[]string{"capture", "host", "example.com"}, "names are not resolved"},
		{[]string{"capture", "--flags", "SYN,BOGUS"}, `"BOGUS" is not a TCP flag`},
		{[]string{"capture", "--snaplen", "5000"}, "--snaplen 5000: 0 (whole packet, up to 4096 bytes) or 1 to 4096"},
		{[]string{"capture", "--rotate-size", "1000"}, "they need -w FILE"},
		{[]string{"capture", "-w", "x", "--rotate-count", "3"}, "--rotate-count needs --rotate-size"},
		{[]string{"capture", "--buffer-size", "5000"}, "--buffer-size 5000: a power of two"},
		{[]string{"capture", "-o", "json"}, "-o json: capture writes pcapng (-w) or text lines"},
		{[]string{"capture", "--interval", "1s"}, "--interval: capture prints packets as they come"},
		{[]string{"capture", "-r", "x", "-w", "y"}, "-r reads a file: it takes neither -w nor -i"},
		{[]string{"capture", "-i", "no-such-if0"}, "interface no-such-if0: no such network device"},
		{[]string{"capture", "-r", "/nonexistent.pcapng"}, "no such file or directory"},
		{[]string{"retrans", "--port", "0"}, "--port 0: a port is 1 to 65535"},
		{[]string{"states", "--port", "65536"}, "--port 65536: a port is 1 to 65535"},
		{[]string{"states", "--port", "80", "--port", "0"}, "--port 0: a port is 1 to 65535"},
		{[]string{"rtt", "--lport", "0"}, "--lport 0: a port is 1 to 65535"},
		{[]string{"retrans", "--rport", "70000"}, "--rport 70000: a port is 1 to 65535"},
		{[]string{"states", "--port", "1,2,3,4,5,6,7,8,9"}, "--port: at most 8 ports, got 9"},
		{[]string{"resets", "--lport", "1", "--lport", "2", "--lport", "3", "--lport", "4", "--lport", "5",
			"--lport", "6", "--lport", "7", "--lport", "8", "--lport", "9"}, "--lport: at most 8 ports, got 9"},
		{[]string{"drops", "--host", "10.0.0.1", "--host", "10.0.0.2", "--host", "10.0.0.3", "--host", "10.0.0.4", "--host", "10.0.0.5",
			"--host", "10.0.0.6", "--host", "10.0.0.7", "--host", "10.0.0.8", "--host", "10.0.0.9"}, "--host: at most 8 addresses or prefixes, got 9"},
		{[]string{"states", "--host", "10.0.0.0/8", "--host", "bogus"}, `--host "bogus": not an IP address or CIDR prefix`},
		{[]string{"states", "-6", "--host", "fd00::/8", "--host", "10.0.0.0/8"}, "--host 10.0.0.0/8 does not match the address family"},
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

// Help shows what each socket-path command really does with --interval,
// and its defaults are the true ones.
func TestSocketPathHelp(t *testing.T) {
	for _, cmd := range []string{"states", "resets", "drops", "rtt", "retrans"} {
		code, stdout, _ := runCLI(cmd, "--help")
		if code != ExitOK {
			t.Fatalf("%s --help: exit %d", cmd, code)
		}
		for _, flag := range []string{"--port", "--lport", "--rport", "--host", "--ipv4", "--ipv6"} {
			if !strings.Contains(stdout, flag) {
				t.Errorf("%s --help does not list %s", cmd, flag)
			}
		}
		hasInterval := strings.Contains(stdout, "--interval")
		if wantInterval := cmd == "rtt" || cmd == "retrans"; hasInterval != wantInterval {
			t.Errorf("%s --help lists --interval: %v, want %v", cmd, hasInterval, wantInterval)
		}
		for _, line := range strings.Split(stdout, "\n") {
			if strings.Contains(line, "--interval") && strings.Contains(line, "(default") {
				t.Errorf("%s --help shows a default interval, but it streams by default: %q", cmd, line)
			}
			if strings.Contains(line, "(default [])") {
				t.Errorf("%s --help shows an empty list as a default: %q", cmd, line)
			}
		}
	}
	// The packet-path commands do report every second by default.
	_, stdout, _ := runCLI("flags", "--help")
	if !strings.Contains(stdout, "(default 1s)") {
		t.Errorf("flags --help does not show the 1s interval default")
	}
}

// Every filter kind is repeatable and accepts lists; a valid set gets past
// the flags (and then fails on privileges or loads, never as bad usage).
func TestSockFiltersRepeatable(t *testing.T) {
	var sf sockFlags
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	sf.register(fs)
	err := fs.Parse([]string{"--port", "80", "--port", "443,8080", "--port", "80", "--lport", "22", "--rport", "53", "--rport", "853",
		"--host", "10.0.0.0/8", "--host", "::ffff:192.0.2.1", "--host", "fd00::/8"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := sf.filter()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(f.Ports, f.LPorts, f.RPorts) != "[80 443 8080] [22] [53 853]" {
		t.Errorf("ports %v lports %v rports %v", f.Ports, f.LPorts, f.RPorts)
	}
	if fmt.Sprint(f.Hosts) != "[10.0.0.0/8 192.0.2.1/32 fd00::/8]" {
		t.Errorf("hosts %v", f.Hosts)
	}
}

// No command runs top (here one snapshot, as text: stdout is not a
// terminal; without root, top's refusal); --version is version.
func TestNoCommandAndVersionFlag(t *testing.T) {
	code, stdout, stderr := runCLI("-c", "1", "--interval", "10ms", "--no-events")
	if os.Geteuid() == 0 {
		if code != ExitOK || !strings.Contains(stdout, "connections in") || !strings.Contains(stdout, "VERDICT") {
			t.Errorf("no command: exit %d, stdout %q, stderr %q; want one top snapshot and 0", code, stdout, stderr)
		}
	} else if code != ExitUsage || !strings.HasPrefix(stderr, "tcplens top: ") {
		t.Errorf("no command without root: exit %d, stderr %q; want top's refusal and 2", code, stderr)
	}
	_, want, _ := runCLI("version")
	code, stdout, _ = runCLI("--version")
	if code != ExitOK || stdout != want {
		t.Errorf("--version: exit %d, output %q; want %q like version", code, stdout, want)
	}
}

// version names the version and commit set with -ldflags (the Makefile),
// not only what Go's VCS stamping found.
func TestVersionFromLdflags(t *testing.T) {
	defer func(v, c string) { Version, Commit = v, c }(Version, Commit)
	Version, Commit = "v1.2.3", "0123456789abcdef0123456789abcdef01234567"
	code, stdout, _ := runCLI("version")
	if code != 0 || !strings.HasPrefix(stdout, "tcplens v1.2.3 (commit 0123456789abcdef0123456789abcdef01234567, go") {
		t.Errorf("version: exit %d, output %q", code, stdout)
	}
}

func TestVersion(t *testing.T) {
	code, stdout, _ := runCLI("version")
	if code != 0 || !strings.HasPrefix(stdout, "tcplens ") {
		t.Errorf("version: exit %d, output %q", code, stdout)
	}
}
