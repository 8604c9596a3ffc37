package integration

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcplens/tcplens/internal/testnet"
)

// tcpdumpRun is tcpdump writing every TCP packet of one namespace's veth
// to a pcap file: an oracle independent of tcplens, reading the packets
// from a packet socket.
type tcpdumpRun struct {
	cmd    *exec.Cmd
	file   string
	stderr *testnet.SyncBuffer
	done   chan error
}

// startTcpdump starts tcpdump on ns's veth and waits until it listens. It
// is ended (by its PID) when the test ends, if stop did not end it.
func startTcpdump(t *testing.T, ns *testnet.NS) *tcpdumpRun {
	t.Helper()
	if _, err := exec.LookPath("tcpdump"); err != nil {
		if os.Getenv("TCPLENS_REQUIRE_PRIVILEGED") == "1" {
			t.Fatalf("tcpdump is needed: %v", err)
		}
		t.Skipf("tcpdump is needed: %v", err)
	}
	r := &tcpdumpRun{file: filepath.Join(t.TempDir(), "egress.pcap"), stderr: &testnet.SyncBuffer{}, done: make(chan error, 1)}
	// --immediate-mode: each packet handed over as it comes (not when a
	// ring block fills or times out), which makes libpcap use a ring of
	// snaplen-sized frames: -s 128 (headers with options are enough) so that
	// a burst of handshakes fits, where the default 256 KiB snaplen fits 8
	// packets and drops the rest under load. -U: written as it comes;
	// -Z root: no privilege drop, so it can write the test's directory.
	r.cmd = ns.Command("tcpdump", "-i", ns.Link, "-n", "--immediate-mode", "-s", "128", "-U", "-Z", "root", "-w", r.file, "tcp")
	r.cmd.Stderr = r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start tcpdump: %v", err)
	}
	go func() { r.done <- r.cmd.Wait() }()
	t.Cleanup(func() {
		if r.cmd.ProcessState == nil {
			r.cmd.Process.Kill()
			<-r.done
		}
	})
	testnet.WaitFor(t, 10*time.Second, "tcpdump listening", func() bool {
		return strings.Contains(r.stderr.String(), "listening on")
	})
	return r
}

// stop waits until tcpdump's file holds want packets (what the kernel
// counters say crossed the veth), then ends tcpdump with SIGINT (it
// flushes and says how many packets the kernel dropped) and fails t if it
// dropped any.
func (r *tcpdumpRun) stop(t *testing.T, ns *testnet.NS, want uint64) {
	t.Helper()
	var got int
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		out := ns.Run(t, "tcpdump", "-r", r.file, "-n", "tcp")
		if got = strings.Count(out, "Flags ["); uint64(got) >= want {
			break
		}
	}
	r.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		r.cmd.Process.Kill()
		<-r.done
		t.Fatalf("tcpdump did not end on SIGINT; stderr: %s", r.stderr.String())
	}
	if uint64(got) < want {
		t.Fatalf("tcpdump's file holds %d packets, want %d; its stderr: %s", got, want, r.stderr.String())
	}
	if !strings.Contains(r.stderr.String(), "\n0 packets dropped by kernel") {
		t.Fatalf("tcpdump dropped packets, so it is no oracle here; its stderr: %s", r.stderr.String())
	}
}

// flagCounts counts, per flag, the TCP packets tcpdump saw sent from src,
// from tcpdump's own reading of its file ("Flags [S.]": S SYN, F FIN,
// R RST, P PSH, U URG, . ACK, E ECE, W CWR).
func (r *tcpdumpRun) flagCounts(t *testing.T, ns *testnet.NS, src netip.Addr) map[string]uint64 {
	t.Helper()
	out := ns.Run(t, "tcpdump", "-r", r.file, "-n", "tcp and src host "+src.String())
	counts := map[string]uint64{"tcp_packets": 0}
	letters := map[rune]string{'F': "flags.fin", 'S': "flags.syn", 'R': "flags.rst", 'P': "flags.psh",
		'.': "flags.ack", 'U': "flags.urg", 'E': "flags.ece", 'W': "flags.cwr"}
	for _, name := range letters {
		counts[name] = 0
	}
	for _, line := range strings.Split(out, "\n") {
		_, rest, ok := strings.Cut(line, "Flags [")
		if !ok {
			continue
		}
		fl, _, ok := strings.Cut(rest, "]")
		if !ok {
			t.Fatalf("tcpdump line without the end of its flags: %q", line)
		}
		counts["tcp_packets"]++
		for _, c := range fl {
			name, ok := letters[c]
			if !ok {
				t.Fatalf("tcpdump flag %q unknown in %q", c, line)
			}
			counts[name]++
		}
	}
	return counts
}
