package testnet

import (
	"net/netip"
	"testing"
	"time"

	"github.com/tcplens/tcplens/internal/testutil"
)

func TestParseProcAddr(t *testing.T) {
	for in, want := range map[string]string{
		"0100007F:1F90":                         "127.0.0.1:8080",
		"0200C80A:0050":                         "10.200.0.2:80",
		"0000FDFD000000000000000002000000:01BB": "[fdfd::2]:443",
	} {
		got, err := parseProcAddr(in)
		if err != nil || got != netip.MustParseAddrPort(want) {
			t.Errorf("parseProcAddr(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
}

// TestPair checks the helper itself: both families connect, the sockets
// and counters are the namespace's own, a flapped link carries traffic
// again.
func TestPair(t *testing.T) {
	testutil.RequirePrivileged(t)
	p := NewPair(t)
	for _, f := range Families {
		t.Run(f.String(), func(t *testing.T) {
			srv := p.B.Listen(t, f, 0)
			before, err := p.A.SNMP()
			if err != nil {
				t.Fatal(err)
			}
			bBefore, err := p.B.SNMP()
			if err != nil {
				t.Fatal(err)
			}
			conns := p.A.OpenConns(t, srv.Addr, 3)
			if n := p.B.CountSockets(StateEstablished); n != 3 {
				t.Errorf("B has %d established sockets, want 3", n)
			}
			CloseConns(t, conns)
			bAfter, err := p.B.SNMP()
			if err != nil {
				t.Fatal(err)
			}
			after, err := p.A.SNMP()
			if err != nil {
				t.Fatal(err)
			}
			if d := after["Tcp:ActiveOpens"] - before["Tcp:ActiveOpens"]; d != 3 {
				t.Errorf("A's Tcp:ActiveOpens grew by %d, want 3", d)
			}
			// SYN, ACK, FIN, ACK each. A retransmits nothing into OutSegs,
			// but each segment B retransmits (a FIN after a slow ACK under
			// emulation, a loss probe) draws one more ACK from A. B's
			// counters are read first, so its retransmissions bound A's
			// extra ACKs from above.
			d := after["Tcp:OutSegs"] - before["Tcp:OutSegs"]
			bRetrans := bAfter["Tcp:RetransSegs"] - bBefore["Tcp:RetransSegs"]
			if d < 12 || d > 12+bRetrans {
				t.Errorf("A's Tcp:OutSegs grew by %d, want 12 (SYN, ACK, FIN, ACK each) plus at most one ACK for each of B's %d retransmitted segments", d, bRetrans)
			}
			WaitFor(t, 5*time.Second, "B's sockets closed", func() bool { return p.B.CountSockets(StateLastAck) == 0 })
			p.B.FlapLink(t, 50*time.Millisecond)
			WaitFor(t, 5*time.Second, "link up", func() bool { return len(p.B.Run(t, "ip", "-br", "link", "show", "up", "dev", p.B.Link)) > 0 })
			if sent := p.A.Bulk(t, srv.Addr, 1<<20, 5*time.Second); sent != 1<<20 {
				t.Errorf("bulk sent %d bytes, want %d", sent, 1<<20)
			}
			if !p.B.Attachments(t).Empty() {
				t.Errorf("fresh veth has BPF attached: %v", p.B.Attachments(t))
			}
		})
	}
}
