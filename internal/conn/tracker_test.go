package conn

import (
	"net/netip"
	"testing"
	"time"
)

var (
	la = netip.MustParseAddrPort("10.0.0.1:40000")
	ra = netip.MustParseAddrPort("10.0.0.2:80")
	lb = netip.MustParseAddrPort("10.0.0.1:40001")
)

func snapshotAt(t0 time.Time, d time.Duration, samples ...Sample) *Snapshot {
	return &Snapshot{Time: t0.Add(d), Samples: samples, Owners: map[uint32]Owner{7: {PID: 42, Comm: "srv"}},
		NetNS: map[uint64]NetNSCounters{1: {ListenOverflows: uint64(d / time.Second)}}}
}

// TestTrackerRatesAndClosed follows a connection through two refreshes
// and one that opened and closed between them, seen only by the events.
func TestTrackerRatesAndClosed(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tr := NewTracker(DefaultThresholds)
	info1 := &TCPInfo{State: StateEstablished, BytesAcked: 1000, BytesReceived: 500, TotalRetrans: 1, SndWnd: 1000, MinRTT: 10, RTT: 20}
	info2 := *info1
	info2.BytesAcked, info2.BytesReceived, info2.TotalRetrans = 3000, 1500, 4
	s := Sample{Key: Key{NetNS: 1, Local: la, Remote: ra}, State: StateEstablished, Inode: 7, Info: info1}
	conns, tot := tr.Refresh(snapshotAt(t0, 0, s))
	if len(conns) != 1 || tot.NewConnections != 0 || conns[0].AgeExact {
		t.Fatalf("first refresh: %+v %+v", conns, tot)
	}
	if conns[0].Owner.PID != 42 {
		t.Errorf("owner %+v, want pid 42", conns[0].Owner)
	}
	// Between the refreshes: lb opens and is reset; events only.
	tr.StateChange(t0, lb, ra, StateClose, StateSynSent)
	tr.ResetEvent(t0, lb, ra, false)
	tr.Lifetime(t0, lb, ra, StateEstablished, 300*time.Millisecond, true, 10, 0, 2, 9, "cli")
	tr.Handshake(2 * time.Millisecond)
	tr.Handshake(4 * time.Millisecond)
	tr.Drop(t0, la, ra, "NO_SOCKET")
	tr.Drop(t0, la, ra, "")
	s.Info = &info2
	conns, tot = tr.Refresh(snapshotAt(t0, 2*time.Second, s))
	if tot.Handshakes != 2 || tot.HandshakeAvg != 3*time.Millisecond || tot.HandshakeMax != 4*time.Millisecond ||
		tot.Drops["NO_SOCKET"] != 1 || tot.Drops["UNKNOWN"] != 1 {
		t.Errorf("handshakes %d avg %s max %s drops %v", tot.Handshakes, tot.HandshakeAvg, tot.HandshakeMax, tot.Drops)
	}
	if len(conns) != 2 {
		t.Fatalf("%d connections, want the open one and the closed one: %+v", len(conns), conns)
	}
	c := conns[0]
	if c.TxBps != 1000 || c.RxBps != 500 || c.RetransInterval != 3 {
		t.Errorf("rates tx %v rx %v retrans %v, want 1000, 500, 3", c.TxBps, c.RxBps, c.RetransInterval)
	}
	cl := conns[1]
	if !cl.Closed || cl.Verdict != Reset || cl.Local != lb || cl.Owner.PID != 9 || cl.Age != 300*time.Millisecond {
		t.Errorf("closed connection %+v", cl)
	}
	if tot.NewConnections != 1 || tot.Closed != 1 || tot.ResetsReceived != 1 || tot.RetransSegments != 3+2 || tot.ListenOverflows != 2 {
		t.Errorf("totals %+v", tot)
	}
	// A reset seen from one end marks the other end's socket too.
	tr.ResetEvent(t0, ra, la, true)
	// The next refresh: the snapshot lost the first connection.
	conns, tot = tr.Refresh(snapshotAt(t0, 3*time.Second))
	if len(conns) != 1 || !conns[0].Closed || conns[0].Verdict != Reset || tot.Closed != 1 || tot.ResetsSent != 1 {
		t.Errorf("after the connection went: %+v %+v", conns, tot)
	}
	if got := tr.RecentlyClosed(); len(got) != 2 || got[0].Local != la {
		t.Errorf("recently closed %+v", got)
	}
}

// TestTrackerHistoryFollowsKeys checks that each socket's history (its
// previous TCP_INFO, its age) follows its key when the snapshot's order
// changes, new sockets sort in before it, and the IPv4 and IPv6 dumps both
// hold it; the tracker keeps its history by position in the last sorted
// refresh.
func TestTrackerHistoryFollowsKeys(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tr := NewTracker(DefaultThresholds)
	mk := func(local netip.AddrPort, acked uint64) Sample {
		return Sample{Key: Key{NetNS: 1, Local: local, Remote: ra}, State: StateEstablished,
			Info: &TCPInfo{State: StateEstablished, BytesAcked: acked, SndWnd: 1000}}
	}
	lc := netip.MustParseAddrPort("10.0.0.1:40002")
	early := netip.MustParseAddrPort("10.0.0.0:1") // sorts before every other
	tr.Refresh(snapshotAt(t0, 0, mk(lc, 3000), mk(la, 1000), mk(lb, 2000)))
	conns, tot := tr.Refresh(snapshotAt(t0, time.Second, mk(lb, 2200), mk(early, 50), mk(lc, 3300), mk(la, 1100), mk(la, 1100)))
	want := map[netip.AddrPort]float64{early: 0, la: 100, lb: 200, lc: 300}
	if len(conns) != 4 || tot.NewConnections != 1 {
		t.Fatalf("%d connections, %d new: %+v", len(conns), tot.NewConnections, conns)
	}
	for _, c := range conns {
		if c.TxBps != want[c.Local] {
			t.Errorf("%s: tx %v B/s, want %v", c.Local, c.TxBps, want[c.Local])
		}
		if age := map[bool]time.Duration{true: 0, false: time.Second}[c.Local == early]; c.Age != age || c.AgeExact != (c.Local == early) {
			t.Errorf("%s: age %s exact %v", c.Local, c.Age, c.AgeExact)
		}
	}
	// The caller's filtering or reading does not disturb the history: the
	// third refresh still finds each socket's second reading.
	conns, _ = tr.Refresh(snapshotAt(t0, 2*time.Second, mk(lc, 3600), mk(early, 150), mk(la, 1300), mk(lb, 2300)))
	want = map[netip.AddrPort]float64{early: 100, la: 200, lb: 100, lc: 300}
	for _, c := range conns {
		if c.TxBps != want[c.Local] || (c.Local != early && c.Age != 2*time.Second) {
			t.Errorf("third refresh, %s: tx %v B/s age %s, want %v and 2s", c.Local, c.TxBps, c.Age, want[c.Local])
		}
	}
}

func TestParseCgroup(t *testing.T) {
	for _, tc := range []struct {
		path                 string
		container, pod, unit string
	}{
		{"/", "", "", ""},
		{"/system.slice/sshd.service", "", "", "sshd.service"},
		{"/system.slice/docker-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope",
			"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "", ""},
		{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1b2c3d4e_aaaa_bbbb_cccc_0123456789ab.slice/cri-containerd-abcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcd.scope",
			"abcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcd", "1b2c3d4e-aaaa-bbbb-cccc-0123456789ab", ""},
		{"/kubepods/burstable/pod1b2c3d4e-aaaa-bbbb-cccc-0123456789ab/abcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcd",
			"abcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcd", "1b2c3d4e-aaaa-bbbb-cccc-0123456789ab", ""},
		{"/user.slice/user-0.slice/session-3.scope", "", "", "session-3.scope"},
	} {
		var o Owner
		ParseCgroup(tc.path, &o)
		if o.Container != tc.container || o.PodUID != tc.pod || o.Unit != tc.unit {
			t.Errorf("%s: container %q pod %q unit %q, want %q %q %q", tc.path, o.Container, o.PodUID, o.Unit, tc.container, tc.pod, tc.unit)
		}
	}
	if p := CgroupV2Path("4:memory:/x\n0::/a/b\n"); p != "/a/b" {
		t.Errorf("v2 path %q", p)
	}
}

func TestGroups(t *testing.T) {
	mk := func(remote string, pid int, tx float64, v Verdict) Conn {
		return Conn{Key: Key{Local: la, Remote: netip.MustParseAddrPort(remote)}, State: StateEstablished,
			Owner: Owner{PID: pid, Comm: "lb"}, TxBps: tx, Verdict: v, RetransInterval: 1}
	}
	conns := []Conn{mk("10.1.0.5:80", 1, 100, OK), mk("10.1.0.6:80", 1, 300, Lossy), mk("10.2.0.5:80", 1, 600, OK),
		{Closed: true, TxBps: 1e9}}
	g := Groups(conns, GroupRNet24)
	if len(g) != 2 || g[0].Key != "10.2.0.0/24" || g[1].Key != "10.1.0.0/24" || g[1].Connections != 2 ||
		g[1].Worst != Lossy || g[1].Retrans != 2 || g[0].ThroughputShare != 0.6 {
		t.Errorf("groups %+v", g)
	}
	if g := Groups(conns, GroupProcess); len(g) != 1 || g[0].Key != "1/lb" || g[0].ConnShare != 1 {
		t.Errorf("by process %+v", g)
	}
	f := Filter{Ports: []uint16{80}, Hosts: []netip.Prefix{netip.MustParsePrefix("10.2.0.0/16")}}
	if f.Match(&conns[0]) || !f.Match(&conns[2]) {
		t.Error("filter")
	}
}

// TestTrackerEventsBounded: events for more connections than the bound
// between two refreshes keep no more details than the bound, and the
// totals still count every one.
func TestTrackerEventsBounded(t *testing.T) {
	tr := NewTracker(DefaultThresholds)
	now := time.Now()
	local := netip.MustParseAddrPort("10.0.0.1:80")
	n := maxEventTuples + 1000
	for i := 0; i < n; i++ {
		remote := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), uint16(1024+i>>16))
		tr.Retransmit(now, local, remote, 1, StateSynRecv, true)
		tr.ResetEvent(now, local, remote, true)
	}
	if len(tr.resets) > maxEventTuples || len(tr.eventNotes) > maxEventTuples {
		t.Errorf("kept %d resets, %d notes; bound %d", len(tr.resets), len(tr.eventNotes), maxEventTuples)
	}
	_, tot := tr.Refresh(&Snapshot{Time: now})
	if tot.SYNRetrans != uint64(n) || tot.ResetsSent != uint64(n) {
		t.Errorf("totals: %d SYN retransmissions, %d resets sent; want %d each", tot.SYNRetrans, tot.ResetsSent, n)
	}
}
