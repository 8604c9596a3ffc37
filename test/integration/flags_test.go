package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/tcplens/tcplens/internal/testnet"
	"github.com/tcplens/tcplens/internal/testutil"
)

// TestFlagsCountsHandshakes watches B's ingress while A opens n
// connections to B and closes them. CloseConns fixes the packet sequence,
// so from A each connection is SYN, ACK, FIN+ACK, ACK; A asks for ECN, so
// each SYN also carries ECE and CWR. On a busy machine a peer may
// retransmit (B's SYN-ACK timer is 1 s), and A answers with one more ACK:
// so the exact truth is A's own counters (A sends only to B, and nothing
// is lost on a veth), and the sequence above is only logged when they
// differ from it.
// packetScenarios adds the netlink TC hook to every scenario: it is what
// --hook tc falls back to on kernels without tcx (before 6.6), forced here
// so that kernels with tcx test it too.
var packetScenarios = append(append([]scenario(nil), scenarios...),
	scenario{"tc-netlink", testnet.IPv4}, scenario{"tc-netlink", testnet.IPv6})

// hookLabelPrefix is how the JSON "hook" of an attachment made with
// --hook h begins ("tc/tcx" or "tc/netlink" for tc).
func hookLabelPrefix(h string) string {
	switch h {
	case "tc-netlink":
		return "tc/netlink"
	case "tcx":
		return "tc/tcx"
	}
	return h + "/"
}

func TestFlagsCountsHandshakes(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	const n = 20
	for _, sc := range packetScenarios {
		t.Run(sc.String(), func(t *testing.T) {
			t.Parallel()
			p := testnet.NewPair(t)
			p.A.Sysctl(t, "net.ipv4.tcp_ecn", "1") // also IPv6's
			srv := p.B.Listen(t, sc.family, 0)
			tl := p.B.StartTcplens(t, "flags", "-i", p.B.Link, "-o", "json", "--hook", sc.hook)

			beforeA, beforeB := snmp(t, p.A), snmp(t, p.B)
			testnet.CloseConns(t, p.A.OpenConns(t, srv.Addr, n))
			// B leaves LAST_ACK when A's last ACK has arrived, after passing
			// the hook: then every packet of the test has been counted.
			testnet.WaitFor(t, 5*time.Second, "B's connections closed", func() bool {
				return p.B.CountSockets(testnet.StateLastAck) == 0
			})
			afterA, afterB := snmp(t, p.A), snmp(t, p.B)
			sent, syns := segmentsSent(t, beforeA, afterA), synsSent(t, beforeA, afterA)
			retransA, retransB := snmpDelta(t, beforeA, afterA, "Tcp:RetransSegs"), snmpDelta(t, beforeB, afterB, "Tcp:RetransSegs")
			res := tl.Stop()
			if res.ExitCode != 0 {
				t.Fatalf("tcplens exited with %d; stderr: %s", res.ExitCode, res.Stderr)
			}
			sum := res.Summary(t, p.B.Link)
			if hook := sum.String(t, "hook"); !strings.HasPrefix(hook, hookLabelPrefix(sc.hook)) {
				t.Errorf("hook %q, want %s...", hook, hookLabelPrefix(sc.hook))
			}
			if sent != 4*n {
				// Not a tcplens failure: the counts below are checked against
				// what A sent, whatever made it more.
				t.Logf("A sent %d segments (%d SYNs), not 4 per connection (%d); retransmitted: %d by A, %d by B",
					sent, syns, 4*n, retransA, retransB)
			}
			checkCounts(t, sum, map[string]uint64{
				"tcp_packets": sent,
				"flags.syn":   syns, "flags.ack": sent - syns,
				"flags.rst": 0, "flags.psh": 0, "flags.urg": 0,
				"anomalies.syn_fin": 0, "anomalies.syn_rst": 0, "anomalies.null": 0,
				"anomalies.xmas": 0, "anomalies.malformed": 0,
				"dropped": 0,
			})
			// A FIN or an ECN SYN retransmitted adds one; the kernel sends a
			// retransmitted SYN without ECN (tcp_ecn_fallback).
			checkRange(t, sum, "flags.fin", n, n+retransA)
			checkRange(t, sum, "flags.ece", n, syns)
			checkRange(t, sum, "flags.cwr", n, syns)
			if pk, tcp := sum.Uint(t, "packets"), sum.Uint(t, "tcp_packets"); pk < tcp {
				t.Errorf("packets = %d < tcp_packets = %d", pk, tcp)
			}
			if srv.Accepted() != n {
				t.Errorf("server accepted %d connections, want %d", srv.Accepted(), n)
			}
		})
	}
}

// TestFlagsCountsSegmentsOfBulkTransfer sends a bounded bulk transfer.
// The sender's TSO makes 64 KB skbs that cross the veth whole, so the TC
// hook sees fewer skbs than segments and must count gso_segs; XDP on veth
// makes the peer send wire-sized segments. Either way tcp_packets must be
// the segments A sent, and every segment but the SYN carries ACK.
func TestFlagsCountsSegmentsOfBulkTransfer(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	const size = 8 << 20
	for _, sc := range packetScenarios {
		t.Run(sc.String(), func(t *testing.T) {
			t.Parallel()
			p := testnet.NewPair(t)
			srv := p.B.Listen(t, sc.family, 0)
			tl := p.B.StartTcplens(t, "flags", "-i", p.B.Link, "-o", "json", "--hook", sc.hook)

			before := snmp(t, p.A)
			sentBytes := p.A.Bulk(t, srv.Addr, size, 10*time.Second)
			testnet.WaitFor(t, 5*time.Second, "B's connection closed", func() bool {
				return p.B.CountSockets(testnet.StateLastAck) == 0
			})
			after := snmp(t, p.A)
			sent := segmentsSent(t, before, after)
			res := tl.Stop()
			if res.ExitCode != 0 {
				t.Fatalf("tcplens exited with %d; stderr: %s", res.ExitCode, res.Stderr)
			}
			sum := res.Summary(t, p.B.Link)
			t.Logf("%d bytes in %d segments (%d retransmitted); tcplens: %d TCP packets, %d with PSH",
				sentBytes, sent, snmpDelta(t, before, after, "Tcp:RetransSegs"), sum.Uint(t, "tcp_packets"), sum.Uint(t, "flags.psh"))
			syns := synsSent(t, before, after)
			checkCounts(t, sum, map[string]uint64{
				"tcp_packets": sent,
				"flags.syn":   syns, "flags.ack": sent - syns,
				"flags.rst": 0, "dropped": 0, "anomalies.malformed": 0,
			})
			checkRange(t, sum, "flags.fin", 1, 1+snmpDelta(t, before, after, "Tcp:RetransSegs"))
			if srv.Received() != sentBytes {
				t.Errorf("server received %d bytes, A sent %d", srv.Received(), sentBytes)
			}
		})
	}
}

// TestFlagsDropSYNPort drops SYNs to one port: dials to it time out, dials
// to another port of the same server address succeed. A listener is on
// the dropped port too, so only the drop can make those dials fail.
//
// Each failing dial waits 1.5 s; the kernel sends the SYN, and again after
// the initial RTO of 1 s, so normally 2 SYNs per dial (3 if the VM delays
// the dial's timer past the second retransmission at 3 s, which would be
// a very sick VM). The exact number is A's active opens plus its
// SYN retransmissions during the failing dials, from A's own counters.
func TestFlagsDropSYNPort(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	const (
		dropped, open = 7001, 7002
		fails, oks    = 2, 5
		dialTimeout   = 1500 * time.Millisecond
	)
	for _, sc := range packetScenarios {
		t.Run(sc.String(), func(t *testing.T) {
			t.Parallel()
			p := testnet.NewPair(t)
			blocked := p.B.Listen(t, sc.family, dropped)
			srv := p.B.Listen(t, sc.family, open)
			tl := p.B.StartTcplens(t, "flags", "-i", p.B.Link, "-o", "json", "--hook", sc.hook, "--drop-syn-port", "7001")

			before := snmp(t, p.A)
			for i := 0; i < fails; i++ {
				p.A.DialFail(t, blocked.Addr, dialTimeout)
			}
			mid := snmp(t, p.A)
			synsToDropped := synsSent(t, before, mid)

			testnet.CloseConns(t, p.A.OpenConns(t, srv.Addr, oks))
			testnet.WaitFor(t, 5*time.Second, "B's connections closed", func() bool {
				return p.B.CountSockets(testnet.StateLastAck) == 0
			})
			after := snmp(t, p.A)
			synsToOpen := synsSent(t, mid, after)
			res := tl.Stop()
			if res.ExitCode != 0 {
				t.Fatalf("tcplens exited with %d; stderr: %s", res.ExitCode, res.Stderr)
			}
			sum := res.Summary(t, p.B.Link)
			if synsToDropped < 2*fails || synsToDropped > 3*fails {
				t.Errorf("A sent %d SYNs in %d dials of %s, want 2 to 3 per dial", synsToDropped, fails, dialTimeout)
			}
			checkCounts(t, sum, map[string]uint64{
				"dropped":   synsToDropped,
				"flags.syn": synsToDropped + synsToOpen,
				"flags.rst": 0,
			})
			checkRange(t, sum, "flags.fin", oks, oks+snmpDelta(t, mid, after, "Tcp:RetransSegs"))
			if blocked.Accepted() != 0 || srv.Accepted() != oks {
				t.Errorf("accepted %d on the dropped port and %d on the open one, want 0 and %d",
					blocked.Accepted(), srv.Accepted(), oks)
			}
		})
	}
}

func checkCounts(t *testing.T, rec testnet.Record, want map[string]uint64) {
	t.Helper()
	bad := false
	for k, w := range want {
		if got := rec.Uint(t, k); got != w {
			t.Errorf("%s = %d, want %d", k, got, w)
			bad = true
		}
	}
	if bad {
		t.Logf("summary: %v", rec)
	}
}
