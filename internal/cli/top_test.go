package cli

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/tcplens/tcplens/internal/conn"
	"github.com/tcplens/tcplens/internal/output"
)

// topFixture is two refreshes of a made-up host: a listener, a lossy
// sender, an idle IPv6 connection of a container, a TIME_WAIT socket, and
// a connection the events saw open and be reset between the refreshes.
func topFixture(t *testing.T, opts topOptions) *topRun {
	t.Helper()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ap := netip.MustParseAddrPort
	lossy1 := &conn.TCPInfo{State: conn.StateEstablished, RTT: 1500, MinRTT: 1000, SndCwnd: 20, SndWnd: 65535,
		BytesAcked: 1_000_000, SegsOut: 1000, DataSegsOut: 1000, BusyTime: 1_000_000}
	lossy2 := *lossy1
	lossy2.BytesAcked, lossy2.SegsOut, lossy2.DataSegsOut, lossy2.BusyTime, lossy2.TotalRetrans = 3_000_000, 2000, 2000, 2_000_000, 50
	idle := &conn.TCPInfo{State: conn.StateEstablished, RTT: 40, MinRTT: 30, SndCwnd: 10, SndWnd: 65535}
	samples := func(lossy *conn.TCPInfo) []conn.Sample {
		return []conn.Sample{
			{Key: conn.Key{NetNS: 1, Local: ap("0.0.0.0:80"), Remote: ap("0.0.0.0:0")}, State: conn.StateListen, Inode: 10, RQueue: 3, WQueue: 2},
			{Key: conn.Key{NetNS: 1, Local: ap("10.0.0.1:80"), Remote: ap("10.0.0.9:40000")}, State: conn.StateEstablished, Inode: 11, WQueue: 4000, Info: lossy},
			{Key: conn.Key{NetNS: 2, Local: ap("[fd00::1]:5000"), Remote: ap("[fd00::2]:443")}, State: conn.StateEstablished, Inode: 12, Info: idle},
			{Key: conn.Key{NetNS: 1, Local: ap("10.0.0.1:80"), Remote: ap("10.0.0.8:39999")}, State: conn.StateTimeWait},
		}
	}
	snap := func(d time.Duration, s []conn.Sample, overflows uint64) *conn.Snapshot {
		return &conn.Snapshot{Time: t0.Add(d), Samples: s,
			Owners: map[uint32]conn.Owner{10: {PID: 100, Comm: "nginx", Cgroup: "/system.slice/nginx.service", Unit: "nginx.service"},
				11: {PID: 101, Comm: "nginx", Cgroup: "/system.slice/nginx.service", Unit: "nginx.service"},
				12: {PID: 200, Comm: "client", Cgroup: "/docker/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
					Container: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}},
			NetNS: map[uint64]conn.NetNSCounters{1: {ListenOverflows: overflows}, 2: {}}, NetNSNames: map[uint64]string{2: "blue"}}
	}
	tr := &topRun{opts: opts, tracker: conn.NewTracker(conn.DefaultThresholds)}
	tr.tracker.Refresh(snap(0, samples(lossy1), 5))
	tr.tracker.StateChange(t0, ap("10.0.0.1:41000"), ap("10.0.0.7:22"), conn.StateClose, conn.StateSynSent)
	tr.tracker.Handshake(1500 * time.Microsecond)
	tr.tracker.ResetEvent(t0, ap("10.0.0.1:41000"), ap("10.0.0.7:22"), false)
	tr.tracker.Lifetime(t0, ap("10.0.0.1:41000"), ap("10.0.0.7:22"), conn.StateEstablished, 20*time.Millisecond, true, 0, 0, 0, 300, "ssh")
	tr.tracker.Drop(t0, ap("10.0.0.1:80"), ap("10.0.0.9:40000"), "TCP_LISTEN_OVERFLOW")
	tr.tracker.Retransmit(t0, ap("10.0.0.1:80"), ap("10.0.0.9:40000"), 1, conn.StateEstablished, false)
	return tr.withFrame(t, snap(time.Second, samples(&lossy2), 7))
}

// withFrame keeps the frame of a second refresh on the run, for the tests.
func (t *topRun) withFrame(tb *testing.T, s *conn.Snapshot) *topRun {
	conns, tot := t.tracker.Refresh(s)
	t.frame = t.render(conns, tot, nil)
	return t
}

func TestTopGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts topOptions
	}{
		{"top", topOptions{}},
		{"top_group_container", topOptions{groupBy: conn.GroupContainer}},
	} {
		tr := topFixture(t, tc.opts)
		f := tr.frame
		var text bytes.Buffer
		if err := output.TopText(&text, f.Totals, f.Conns, f.Groups); err != nil {
			t.Fatal(err)
		}
		golden(t, tc.name+".text.golden", text.Bytes())
		var js bytes.Buffer
		out := output.NewJSONLines(&js)
		for i := range f.Conns {
			out.Emit(&f.Conns[i])
		}
		for i := range f.Groups {
			out.Emit(&f.Groups[i])
		}
		out.Emit(f.Totals)
		out.Flush()
		golden(t, tc.name+".json.golden", js.Bytes())
	}
}

// TestTopFilter keeps only what --port/-6 ask for, and counts only it.
func TestTopFilter(t *testing.T) {
	tr := topFixture(t, topOptions{filter: conn.Filter{Family: 6}})
	if n := len(tr.frame.Conns); n != 1 || tr.frame.Conns[0].LPort != 5000 || tr.frame.Totals.Connections != 1 {
		t.Errorf("-6: %d connections %+v, totals %+v", n, tr.frame.Conns, tr.frame.Totals)
	}
}
