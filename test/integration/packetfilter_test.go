package integration

import (
	"fmt"
	"testing"
	"time"

	"github.com/tcplens/tcplens/internal/testnet"
	"github.com/tcplens/tcplens/internal/testutil"
)

// TestPacketPathFilters runs flags and syn with the packet-path filters on
// B's veth while A opens connections to three servers on B (two IPv4
// ports, one IPv6). The oracle is the connections the test opened to each
// (with A's SYN retransmissions, from its own counters, required to be 0
// so that counts are exact): each command counts the SYNs of exactly the
// servers its filter selects.
func TestPacketPathFilters(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	p := testnet.NewPair(t)
	s1, s2 := p.B.Listen(t, testnet.IPv4, 0), p.B.Listen(t, testnet.IPv4, 0)
	s6 := p.B.Listen(t, testnet.IPv6, 0)
	const n1, n2, n6 = 3, 5, 4
	port1, port2 := fmt.Sprint(s1.Addr.Port()), fmt.Sprint(s2.Addr.Port())

	runs := []struct {
		name string
		args []string
		want uint64
	}{
		{"flags --port", []string{"flags", "--port", port1}, n1},
		{"flags --port x2 -4", []string{"flags", "--port", port1, "--port", port2, "-4"}, n1 + n2},
		{"flags -6", []string{"flags", "-6"}, n6},
		{"flags --host", []string{"flags", "--host", p.B.Addr(testnet.IPv6).String()}, n6},
		{"flags --filter", []string{"flags", "--filter", "dst port " + port2 + " or (ip6 and not port " + port1 + ")"}, n2 + n6},
		{"syn --filter", []string{"syn", "--filter", "tcp dst port " + port2}, n2},
	}
	procs := make([]*testnet.Process, len(runs))
	for i, r := range runs {
		hook := "tc"
		if i == 0 {
			hook = "xdp"
		}
		procs[i] = p.B.StartTcplens(t, append(r.args, "-i", p.B.Link, "-o", "json", "--hook", hook)...)
	}
	before := snmp(t, p.A)
	for _, c := range []struct {
		srv *testnet.Server
		n   int
	}{{s1, n1}, {s2, n2}, {s6, n6}} {
		testnet.CloseConns(t, p.A.OpenConns(t, c.srv.Addr, c.n))
	}
	testnet.WaitFor(t, 5*time.Second, "B's connections closed", func() bool {
		return p.B.CountSockets(testnet.StateLastAck) == 0
	})
	if r := snmpDelta(t, before, snmp(t, p.A), "TcpExt:TCPSynRetrans"); r != 0 {
		t.Fatalf("A retransmitted %d SYNs: counts would not be exact", r)
	}
	for i, r := range runs {
		res := procs[i].Stop()
		if res.ExitCode != 0 {
			t.Fatalf("%s exited with %d: %s", r.name, res.ExitCode, res.Stderr)
		}
		var got uint64
		if r.args[0] == "syn" {
			got = res.Summary(t, "").Uint(t, "syn")
		} else {
			got = dirSummary(t, res, p.B.Link, "in").Uint(t, "flags.syn")
		}
		if got != r.want {
			t.Errorf("%s: %d SYNs, want %d", r.name, got, r.want)
		}
	}
}
