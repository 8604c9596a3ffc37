package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcplens/tcplens/internal/testnet"
	"github.com/tcplens/tcplens/internal/testutil"
)

// tsharkFields are compared field by field between tcplens's file and
// tcpdump's; frame.time_epoch is compared within a tolerance.
var tsharkFields = []string{"frame.len", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "tcp.srcport", "tcp.dstport",
	"tcp.seq_raw", "tcp.ack_raw", "tcp.flags", "tcp.window_size_value", "tcp.hdr_len", "tcp.options", "tcp.len", "frame.time_epoch"}

type decoded struct {
	key  string // every field but the time
	time float64
	src  string
	dir  string // frame.packet_flags_direction, tcplens only
}

// tsharkRead decodes a capture file with tshark: the oracle's decoder,
// independent of gopacket.
func tsharkRead(t *testing.T, path string, withDir bool) []decoded {
	t.Helper()
	args := []string{"-r", path, "-T", "fields", "-E", "separator=|"}
	fields := tsharkFields
	if withDir {
		fields = append(slices.Clone(fields), "frame.packet_flags_direction")
	}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	cmd := exec.Command("tshark", args...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark -r %s: %v", path, err)
	}
	var res []decoded
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, "|")
		ts, err := strconv.ParseFloat(f[len(tsharkFields)-1], 64)
		if err != nil {
			t.Fatalf("tshark time %q: %v", f[len(tsharkFields)-1], err)
		}
		d := decoded{key: strings.Join(f[:len(tsharkFields)-1], "|"), time: ts, src: f[1] + f[3]}
		if withDir {
			d.dir = f[len(f)-1]
		}
		res = append(res, d)
	}
	return res
}

// startTcpdumpFile runs tcpdump -w in ns and waits until it listens; stop
// ends it with SIGINT and returns its stderr (with its drop count).
func startTcpdumpFile(t *testing.T, ns *testnet.NS, iface, file string) (stop func()) {
	t.Helper()
	// -s 128: headers with options (see startTcpdump on immediate mode).
	cmd := ns.Command("tcpdump", "-i", iface, "-w", file, "-nn", "-U", "--immediate-mode", "-s", "128", "-B", "8192", "-Z", "root", "tcp")
	errFile := file + ".stderr"
	ef, err := os.Create(errFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = ef
	if err := cmd.Start(); err != nil {
		t.Fatalf("start tcpdump: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	stop = func() {
		select {
		case <-done:
			return
		default:
		}
		cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		ef.Close()
	}
	t.Cleanup(stop)
	testnet.WaitFor(t, 10*time.Second, "tcpdump listening", func() bool {
		b, _ := os.ReadFile(errFile)
		return strings.Contains(string(b), "listening on")
	})
	return stop
}

// lineExtras are what capture -r prints beyond tcpdump: interface and direction.
var lineExtras = regexp.MustCompile(`^(\S+) \S+ (?:In |Out) `)

var captureSummary = regexp.MustCompile(`(\d+) packets captured, (\d+) matched by filter, (\d+) lost`)

func parseCaptureSummary(t *testing.T, stderr string) (captured, matched, lost uint64) {
	t.Helper()
	m := captureSummary.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no capture summary in stderr: %s", stderr)
	}
	v := func(s string) uint64 { n, _ := strconv.ParseUint(s, 10, 64); return n }
	return v(m[1]), v(m[2]), v(m[3])
}

// TestCaptureMatchesTcpdump runs tcplens capture and tcpdump -w side by
// side on B's veth while A opens connections to B, sends a little and
// closes them. tshark decodes both files: the same packets (every header
// field, the original length), timestamps within a tolerance, and each
// packet's direction flag as its source address says (B's: out).
func TestCaptureMatchesTcpdump(t *testing.T) {
	testutil.RequirePrivileged(t)
	for _, tool := range []string{"tcpdump", "tshark"} {
		if _, err := exec.LookPath(tool); err != nil {
			testutil.SkipUnlessRequired(t, tool+" is not installed")
		}
	}
	t.Parallel()
	const n = 4
	for _, sc := range packetScenarios {
		t.Run(sc.String(), func(t *testing.T) {
			t.Parallel()
			p := testnet.NewPair(t)
			srv := p.B.Listen(t, sc.family, 0)
			dir := t.TempDir()
			ours, theirs := filepath.Join(dir, "tcplens.pcapng"), filepath.Join(dir, "tcpdump.pcap")
			stopDump := startTcpdumpFile(t, p.B, p.B.Link, theirs)
			tl := p.B.StartTcplens(t, "capture", "-i", p.B.Link, "--hook", sc.hook, "-w", ours)

			conns := p.A.OpenConns(t, srv.Addr, n)
			for _, c := range conns {
				if _, err := c.Write([]byte("hello, capture")); err != nil {
					t.Fatal(err)
				}
			}
			testnet.CloseConns(t, conns)
			testnet.WaitFor(t, 5*time.Second, "B's connections closed", func() bool {
				return p.B.CountSockets(testnet.StateLastAck) == 0
			})
			time.Sleep(200 * time.Millisecond) // tcpdump's own buffering
			res := tl.Stop()
			stopDump()
			if b, _ := os.ReadFile(theirs + ".stderr"); !strings.Contains(string(b), "\n0 packets dropped by kernel") {
				t.Fatalf("tcpdump dropped packets, so it is no oracle here; its stderr: %s", b)
			}
			if res.ExitCode != 0 {
				t.Fatalf("tcplens capture exited with %d; stderr: %s", res.ExitCode, res.Stderr)
			}
			captured, matched, lost := parseCaptureSummary(t, res.Stderr)

			got, want := tsharkRead(t, ours, true), tsharkRead(t, theirs, false)
			if uint64(len(got)) != captured || lost != 0 || matched != captured {
				t.Errorf("summary says %d captured, %d matched, %d lost; the file holds %d", captured, matched, lost, len(got))
			}
			if len(got) != len(want) || len(got) < 8*n {
				t.Errorf("tcplens wrote %d packets, tcpdump %d (at least %d expected)", len(got), len(want), 8*n)
			}
			// Match each of tcpdump's packets to an unused identical one of ours.
			used := make([]bool, len(got))
			var worst float64
			for _, w := range want {
				found := false
				for i, g := range got {
					if used[i] || g.key != w.key {
						continue
					}
					used[i], found = true, true
					if d := abs(g.time - w.time); d > worst {
						worst = d
					}
					break
				}
				if !found {
					t.Errorf("tcpdump's packet not in tcplens's file: %s", w.key)
				}
			}
			for i, g := range got {
				if !used[i] {
					t.Errorf("tcplens's packet not in tcpdump's file: %s", g.key)
				}
				wantDir := "0x00000001" // inbound
				if g.src == p.B.Addr(sc.family).String() {
					wantDir = "0x00000002"
				}
				if g.dir != wantDir {
					t.Errorf("packet from %s has direction %s, want %s", g.src, g.dir, wantDir)
				}
			}
			// Both clocks are read on the same host: the hooks run microseconds
			// apart, the rest is the monotonic-to-wall conversion.
			if worst > 0.05 {
				t.Errorf("timestamps differ by up to %.6f s from tcpdump's", worst)
			}
			t.Logf("%d packets, timestamps within %.1f us of tcpdump's", len(got), worst*1e6)

			// -r prints the file back as tcpdump -nn -S prints it, plus the
			// interface, the direction and the process where known.
			out, err := exec.Command(testnet.Tcplens(t), "capture", "-r", ours).Output()
			if err != nil {
				t.Fatalf("tcplens capture -r: %v", err)
			}
			dump, err := exec.Command("tcpdump", "-nn", "-S", "-r", ours).Output()
			if err != nil {
				t.Fatalf("tcpdump -r: %v", err)
			}
			ourLines := strings.Split(strings.TrimSpace(string(out)), "\n")
			dumpLines := strings.Split(strings.TrimSpace(string(dump)), "\n")
			if len(ourLines) != len(got) || len(dumpLines) != len(got) {
				t.Fatalf("capture -r printed %d lines, tcpdump -r %d, for %d packets", len(ourLines), len(dumpLines), len(got))
			}
			for i := range ourLines {
				l := lineExtras.ReplaceAllString(ourLines[i], "$1 ")
				l = strings.SplitN(l, ", PID: ", 2)[0]
				if l != dumpLines[i] {
					t.Errorf("capture -r line %d:\n  %s\ntcpdump -r:\n  %s", i, ourLines[i], dumpLines[i])
				}
			}
		})
	}
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

// TestCaptureTinyRingCountsLosses captures whole packets into a one-page
// ring during a bulk transfer: packets are lost, and captured plus lost
// equals matched, with captured equal to what tshark finds in the file.
// Rotation keeps at most --rotate-count files.
func TestCaptureTinyRingCountsLosses(t *testing.T) {
	testutil.RequirePrivileged(t)
	if _, err := exec.LookPath("tshark"); err != nil {
		testutil.SkipUnlessRequired(t, "tshark is not installed")
	}
	t.Parallel()
	p := testnet.NewPair(t)
	srv := p.B.Listen(t, testnet.IPv4, 0)
	dir := t.TempDir()
	file := filepath.Join(dir, "tiny.pcapng")
	tl := p.B.StartTcplens(t, "capture", "-i", p.B.Link, "--hook", "tc", "--snaplen", "0", "--buffer-size", "4096",
		"-w", file, "--rotate-size", "200000", "--rotate-count", "3", "--no-process")
	p.A.Bulk(t, srv.Addr, 32<<20, 10*time.Second)
	res := tl.Stop()
	if res.ExitCode != 0 {
		t.Fatalf("tcplens capture exited with %d; stderr: %s", res.ExitCode, res.Stderr)
	}
	captured, matched, lost := parseCaptureSummary(t, res.Stderr)
	if lost == 0 {
		t.Errorf("a one-page ring lost nothing during a bulk transfer (%d matched)", matched)
	}
	if captured+lost != matched {
		t.Errorf("captured %d + lost %d != matched %d", captured, lost, matched)
	}
	var inFiles int
	for i := 0; i < 4; i++ {
		name := file
		if i > 0 {
			name = fmt.Sprintf("%s.%d", file, i)
		}
		if _, err := os.Stat(name); err != nil {
			if i < 3 && captured > 3*2000 {
				t.Errorf("rotation file %s missing: %v", name, err)
			}
			continue
		}
		if i == 3 {
			t.Errorf("%s exists: --rotate-count 3 keeps three files", name)
		}
		inFiles += len(tsharkRead(t, name, false))
	}
	t.Logf("%d matched, %d captured, %d lost; %d in the last three files", matched, captured, lost, inFiles)
	if inFiles == 0 || uint64(inFiles) > captured {
		t.Errorf("the files hold %d packets, %d captured", inFiles, captured)
	}
}

// TestCaptureToStdout: -w - writes pcapng to standard output that tcpdump
// reads, and -c stops after that many packets (a handshake and close make
// more than 6 on B's veth, both directions).
func TestCaptureToStdout(t *testing.T) {
	testutil.RequirePrivileged(t)
	if _, err := exec.LookPath("tcpdump"); err != nil {
		testutil.SkipUnlessRequired(t, "tcpdump is not installed")
	}
	t.Parallel()
	p := testnet.NewPair(t)
	srv := p.B.Listen(t, testnet.IPv6, 0)
	tl := p.B.StartTcplens(t, "capture", "-i", p.B.Link, "-w", "-", "-c", "6", "--flags", "SYN,ACK,FIN")
	testnet.CloseConns(t, p.A.OpenConns(t, srv.Addr, 2))
	res := tl.Wait(10 * time.Second)
	if res.ExitCode != 0 {
		t.Fatalf("tcplens capture -c 6 exited with %d; stderr: %s", res.ExitCode, res.Stderr)
	}
	file := filepath.Join(t.TempDir(), "stdout.pcapng")
	if err := os.WriteFile(file, []byte(res.Stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("tcpdump", "-nn", "-r", file).Output()
	if err != nil {
		t.Fatalf("tcpdump -r of capture's stdout: %v", err)
	}
	if n := strings.Count(string(out), "Flags ["); n != 6 {
		t.Errorf("tcpdump reads %d packets from -w - -c 6:\n%s", n, out)
	}
	if captured, _, _ := parseCaptureSummary(t, res.Stderr); captured != 6 {
		t.Errorf("summary says %d captured, want 6", captured)
	}
}

// TestCaptureProcessComment: packets of a connection whose server socket
// lives in the capture's namespace carry the owning process in their
// pcapng comment. The server is this test process (its listener is in
// B's namespace), so the oracle is os.Getpid() and /proc/self/comm.
func TestCaptureProcessComment(t *testing.T) {
	testutil.RequirePrivileged(t)
	if _, err := exec.LookPath("tshark"); err != nil {
		testutil.SkipUnlessRequired(t, "tshark is not installed")
	}
	t.Parallel()
	p := testnet.NewPair(t)
	srv := p.B.Listen(t, testnet.IPv4, 0)
	file := filepath.Join(t.TempDir(), "proc.pcapng")
	tl := p.B.StartTcplens(t, "capture", "-i", p.B.Link, "-w", file)
	conns := p.A.OpenConns(t, srv.Addr, 1)
	// Packets for a while: the owner is looked up at most five times a second.
	for i := 0; i < 8; i++ {
		if _, err := conns[0].Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	testnet.CloseConns(t, conns)
	res := tl.Stop()
	if res.ExitCode != 0 {
		t.Fatalf("tcplens capture exited with %d; stderr: %s", res.ExitCode, res.Stderr)
	}
	comm, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("PID: %d, Command: %s", os.Getpid(), strings.TrimSpace(string(comm)))
	out, err := exec.Command("tshark", "-r", file, "-T", "fields", "-e", "frame.comment").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	with := 0
	for _, l := range lines {
		switch l {
		case want:
			with++
		case "":
		default:
			t.Errorf("comment %q, want %q or none", l, want)
		}
	}
	t.Logf("%d of %d packets name the process", with, len(lines))
	if with < len(lines)/2 {
		t.Errorf("%d of %d packets name the process %q", with, len(lines), want)
	}
}
