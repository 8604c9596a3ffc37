package cli

import (
	"bytes"
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"github.com/tcplens/tcplens/internal/conn"
	"github.com/tcplens/tcplens/internal/events"
	"github.com/tcplens/tcplens/internal/output"
	"github.com/tcplens/tcplens/internal/probe"
)

// rawRecord views a bpf2go struct as the bytes the ring buffer would hold.
func sockpathRaw[T any](v *T) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(v)), unsafe.Sizeof(*v))
}

// sockpathClock maps kernel time 0 to a fixed wall time, so output is stable.
func sockpathClock(t *testing.T) events.Clock {
	t.Helper()
	return events.ClockFrom(time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC))
}

func setAddrs4(local, remote string, lport, rport uint16) (fam uint8, l, r [16]byte) {
	a, b := netip.MustParseAddr(local), netip.MustParseAddr(remote)
	if a.Is4() {
		a4, b4 := a.As4(), b.As4()
		copy(l[:], a4[:])
		copy(r[:], b4[:])
		return 4, l, r
	}
	return 6, a.As16(), b.As16()
}

func stateEvents() []probe.StateEvent {
	mk := func(ts uint64, local, remote string, lport, rport uint16, old, new uint8) probe.StateEvent {
		var e probe.StateEvent
		e.TsNs = ts
		e.Addrs.Family, e.Addrs.Saddr, e.Addrs.Daddr = setAddrs4(local, remote, lport, rport)
		e.Addrs.Sport, e.Addrs.Dport = lport, rport
		e.OldState, e.NewState = old, new
		return e
	}
	syn := mk(1000, "10.0.0.1", "10.0.0.2", 40000, 80, 7, 2)
	syn.Pid = 4242
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&syn.Comm[0])), 16), "curl")
	est := syn
	est.TsNs, est.OldState, est.NewState = 151000, 2, 1
	est.DurationNs, est.HandshakeNs, est.Flags = 150000, 150000, 1|4
	child := mk(2000, "fd00::2", "fd00::1", 80, 50000, 10, 3) // accepted: owner not known
	closed := est
	closed.TsNs, closed.OldState, closed.NewState, closed.DurationNs, closed.HandshakeNs, closed.Flags = 2000151000, 5, 7, 12000, 0, 1
	life := closed
	life.Kind, life.Flags, life.LifetimeNs = 1, 2, 2000150000
	life.BytesAcked, life.BytesReceived, life.TotalRetrans = 70002, 3001, 3
	return []probe.StateEvent{syn, est, child, closed, life}
}

func TestStatesOutputGolden(t *testing.T) {
	for _, f := range []output.Format{output.JSON, output.Text} {
		var out bytes.Buffer
		r := newStatesReport(newSockOut(&out, f, sockpathClock(t)))
		for _, e := range stateEvents() {
			if err := r.record(sockpathRaw(&e)); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.summary(2500*time.Millisecond, output.NewLoss(output.LostByCause{RingBuffer: 4, Recursion: 2, MapFull: 1})); err != nil {
			t.Fatal(err)
		}
		r.out.Flush()
		golden(t, "states."+string(f)+".golden", out.Bytes())
	}
}

func rttEvents() []probe.RTTEvent {
	var e probe.RTTEvent
	e.TsNs = 5000
	e.Addrs.Family, e.Addrs.Saddr, e.Addrs.Daddr = setAddrs4("fd00::1", "fd00::2", 41000, 5201)
	e.Addrs.Sport, e.Addrs.Dport = 41000, 5201
	e.SndCwnd, e.SndSsthresh, e.SrttUs, e.RttvarUs = 10, 0x7fffffff, 71, 29
	e.SndWnd, e.RcvWnd, e.PacketsOut, e.BytesAcked = 64260, 65536, 10, 1
	e.WmemQueued, e.Sndbuf, e.Rcvbuf, e.State, e.Reason = 80440, 69120, 131072, 1, 1
	e2 := e
	e2.TsNs, e2.SndCwnd, e2.SndSsthresh, e2.SrttUs, e2.Reason, e2.TotalRetrans = 90000000, 740, 973, 354, 2|4, 3
	e2.BytesAcked, e2.RmemAlloc = 2117795705, 512
	return []probe.RTTEvent{e, e2}
}

func TestRTTOutputGolden(t *testing.T) {
	for _, f := range []output.Format{output.JSON, output.Text} {
		var out bytes.Buffer
		r := newRTTReport(newSockOut(&out, f, sockpathClock(t)))
		for _, e := range rttEvents() {
			if err := r.record(sockpathRaw(&e)); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.summary(time.Second, output.Loss{}); err != nil {
			t.Fatal(err)
		}
		r.out.Flush()
		golden(t, "rtt."+string(f)+".golden", out.Bytes())
	}
}

func newHists(name string) *conn.RTTHistograms {
	by, _ := conn.ParseHistBy(name)
	return conn.NewRTTHistograms(by)
}

func TestRTTHistogramGolden(t *testing.T) {
	for _, by := range []string{"rport", "conn", "lport", "laddr", "raddr"} {
		for _, f := range []output.Format{output.JSON, output.Text} {
			var out bytes.Buffer
			r := newRTTReport(newSockOut(&out, f, sockpathClock(t)))
			r.hists = newHists(by)
			evs := rttEvents()
			for i, us := range []uint32{0, 1, 2, 3, 50, 70, 90, 1000, 1500} {
				e := evs[0]
				e.SrttUs = us
				if i%3 == 0 {
					e.Addrs.Sport = 42000 // a second connection to the same port
				}
				r.record(sockpathRaw(&e))
			}
			e := evs[1] // cwnd change only: not counted
			r.record(sockpathRaw(&e))
			if err := r.printHistograms(time.Date(2024, 5, 6, 7, 8, 10, 0, time.UTC)); err != nil {
				t.Fatal(err)
			}
			// The summary says how many of the samples the histograms hold.
			if err := r.summary(time.Second, output.Loss{}); err != nil {
				t.Fatal(err)
			}
			r.out.Flush()
			golden(t, "rtt_hist_"+by+"."+string(f)+".golden", out.Bytes())
		}
	}
}

// BenchmarkDecodeStateChange and BenchmarkDecodeRTTSample measure the
// per-record decode: 0 allocs/op is the target.
func BenchmarkDecodeStateChange(b *testing.B) {
	evs := stateEvents()
	raw := sockpathRaw(&evs[4])
	clock := events.NewClock()
	var s events.StateChange
	b.ReportAllocs()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if err := events.DecodeStateChange(raw, clock, &s); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
}

func BenchmarkDecodeRTTSample(b *testing.B) {
	evs := rttEvents()
	raw := sockpathRaw(&evs[1])
	clock := events.NewClock()
	var s events.RTTSample
	b.ReportAllocs()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if err := events.DecodeRTTSample(raw, clock, &s); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
}

func TestDecodeDoesNotAllocate(t *testing.T) {
	se, re := stateEvents(), rttEvents()
	rs, rr := sockpathRaw(&se[4]), sockpathRaw(&re[1])
	clock := events.NewClock()
	var s events.StateChange
	var r events.RTTSample
	if n := testing.AllocsPerRun(100, func() { events.DecodeStateChange(rs, clock, &s) }); n != 0 {
		t.Errorf("DecodeStateChange: %v allocs per record", n)
	}
	if n := testing.AllocsPerRun(100, func() { events.DecodeRTTSample(rr, clock, &r) }); n != 0 {
		t.Errorf("DecodeRTTSample: %v allocs per record", n)
	}
	if err := events.DecodeRTTSample(rr[:10], clock, &r); err == nil {
		t.Errorf("short rtt record decoded")
	}
	if err := events.DecodeStateChange(rs[:10], clock, &s); err == nil {
		t.Errorf("short state record decoded")
	}
}
