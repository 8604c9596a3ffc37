package integration

import (
	"os"
	"testing"

	"github.com/tcplens/tcplens/internal/testnet"
)

// TestMain removes the tcplens binary the tests built (once, on first use).
func TestMain(m *testing.M) {
	code := m.Run()
	testnet.RemoveBuild()
	os.Exit(code)
}

// scenario is one hook and address family.
type scenario struct {
	hook   string
	family testnet.Family
}

func (s scenario) String() string { return s.hook + "/" + s.family.String() }

// scenarios is every hook with every family.
var scenarios = []scenario{
	{"tc", testnet.IPv4}, {"tc", testnet.IPv6},
	{"xdp", testnet.IPv4}, {"xdp", testnet.IPv6},
}

// snmpDelta is after[key] - before[key].
func snmpDelta(t testing.TB, before, after map[string]uint64, key string) uint64 {
	t.Helper()
	b, ok1 := before[key]
	a, ok2 := after[key]
	if !ok1 || !ok2 {
		t.Fatalf("no counter %s in /proc/net/snmp or netstat", key)
	}
	return a - b
}

func snmp(t testing.TB, ns *testnet.NS) map[string]uint64 {
	t.Helper()
	m, err := ns.SNMP()
	if err != nil {
		t.Fatalf("read counters of %s: %v", ns.Name, err)
	}
	return m
}

// segmentsSent is every TCP segment ns sent: OutSegs leaves out
// retransmissions, RetransSegs counts them.
func segmentsSent(t *testing.T, before, after map[string]uint64) uint64 {
	t.Helper()
	return snmpDelta(t, before, after, "Tcp:OutSegs") + snmpDelta(t, before, after, "Tcp:RetransSegs")
}

// synsSent is every SYN ns sent: one per connect, plus retransmissions.
// (TCPSynRetrans also counts SYN-ACK retransmissions, which a pure client
// namespace does not send; in a pure server namespace it counts only those.)
func synsSent(t *testing.T, before, after map[string]uint64) uint64 {
	t.Helper()
	return snmpDelta(t, before, after, "Tcp:ActiveOpens") + snmpDelta(t, before, after, "TcpExt:TCPSynRetrans")
}

// checkRange checks lo <= rec[key] <= hi.
func checkRange(t *testing.T, rec testnet.Record, key string, lo, hi uint64) {
	t.Helper()
	if got := rec.Uint(t, key); got < lo || got > hi {
		t.Errorf("%s = %d, want %d to %d", key, got, lo, hi)
	}
}

// checkNoDeliveryLoss fails when a command lost records itself: the ring
// buffer was full, or a per-socket map entry could not be made. Recursion
// misses are the kernel's count of skipped runs of the program for every
// socket on the host, other tests' included, so they cannot be pinned to
// this test's connections: they are logged, and the records the test needs
// are checked one by one instead.
func checkNoDeliveryLoss(t *testing.T, sum testnet.Record) {
	t.Helper()
	if n := sum.Uint(t, "lost_by_cause.ring_buffer"); n != 0 {
		t.Errorf("ring buffer lost %d records", n)
	}
	if n := sum.Uint(t, "lost_by_cause.map_full"); n != 0 {
		t.Errorf("%d per-socket entries could not be made (map full)", n)
	}
	if n := sum.Uint(t, "lost_by_cause.recursion"); n != 0 {
		t.Logf("%d runs skipped for recursion (host-wide, any socket)", n)
	}
}
