package events

import (
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"github.com/tcplens/tcplens/internal/bpfobj"
)

// rawOf is the record's bytes as the ring buffer holds them.
func rawOf[T any](v *T) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(v)), unsafe.Sizeof(*v))
}

type fakeNames map[uint64]string

func (f fakeNames) Name(v uint64) string { return f[v] }

var zero = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func TestDecodeRetransmit(t *testing.T) {
	var e bpfobj.RetransRetransEvent
	e.TsNs = 1500
	e.Addrs.Family = 6
	e.Addrs.Saddr = netip.MustParseAddr("fd00::1").As16()
	e.Addrs.Daddr = netip.MustParseAddr("fd00::2").As16()
	e.Addrs.Sport, e.Addrs.Dport = 40000, 443
	e.Err, e.Pid, e.TotalRetrans, e.Segs, e.SkbSegs, e.State, e.Kind = 1, 7, 12, 3, 3, 1, RetransData
	var r Retransmit
	if err := DecodeRetransmit(rawOf(&e), ClockFrom(zero), &r); err != nil {
		t.Fatal(err)
	}
	want := Retransmit{Time: zero.Add(1500), Local: netip.MustParseAddrPort("[fd00::1]:40000"),
		Remote: netip.MustParseAddrPort("[fd00::2]:443"), State: 1, Kind: RetransData, Segments: 3, SKBSegments: 3,
		TotalRetrans: 12, Err: 1, PID: 7}
	if r != want {
		t.Errorf("decoded %+v\nwant    %+v", r, want)
	}
	if err := DecodeRetransmit(rawOf(&e)[:10], ClockFrom(zero), &r); err == nil {
		t.Errorf("a short record decoded")
	}
}

func TestDecodeResetAndDrop(t *testing.T) {
	var re bpfobj.ResetsResetEvent
	re.Addrs.Family = 4
	copy(re.Addrs.Saddr[:], []byte{10, 0, 0, 1})
	copy(re.Addrs.Daddr[:], []byte{10, 0, 0, 2})
	re.Addrs.Sport, re.Addrs.Dport = 80, 5555
	re.Reason, re.ReasonKnown, re.Direction = 1, 1, ResetSent
	var r Reset
	if err := DecodeReset(rawOf(&re), ClockFrom(zero), fakeNames{1: "NO_SOCKET"}, &r); err != nil {
		t.Fatal(err)
	}
	if r.Local.String() != "10.0.0.1:80" || r.Remote.String() != "10.0.0.2:5555" || r.ReasonName != "NO_SOCKET" ||
		r.DirectionName() != "sent" || TCPStateName(r.State) != "UNKNOWN" || r.HasSocket {
		t.Errorf("reset decoded as %+v", r)
	}
	// Before 6.10 the kernel gives no reason: none is named, whatever the
	// field holds.
	re.ReasonKnown = 0
	DecodeReset(rawOf(&re), ClockFrom(zero), fakeNames{1: "NO_SOCKET"}, &r)
	if r.ReasonKnown || r.ReasonName != "" {
		t.Errorf("a reset without a reason from the kernel has one: %+v", r)
	}
	re.ReasonKnown = 1
	re.Direction = ResetReceived
	DecodeReset(rawOf(&re), ClockFrom(zero), fakeNames{1: "NO_SOCKET"}, &r)
	if r.ReasonName != "" || r.DirectionName() != "received" {
		t.Errorf("a received reset has a reason: %+v", r)
	}

	var de bpfobj.DropsDropEvent
	de.Addrs = re.Addrs
	de.Reason, de.Direction, de.TcpFlags, de.HasReason = 3, DropIn, 0x12, 1
	var d Drop
	if err := DecodeDrop(rawOf(&de), ClockFrom(zero), fakeNames{3: "NO_SOCKET"}, &d); err != nil {
		t.Fatal(err)
	}
	var buf [8]byte
	if d.ReasonName != "NO_SOCKET" || d.DirectionName() != "in" || string(TCPFlagString(d.TCPFlags, buf[:])) != "S." {
		t.Errorf("drop decoded as %+v", d)
	}
	// A kernel without drop reasons (before 5.17): the zero is not a reason.
	de.HasReason, de.StackId = 0, -1
	if err := DecodeDrop(rawOf(&de), ClockFrom(zero), fakeNames{3: "NO_SOCKET", 0: "NOT_DROPPED_YET"}, &d); err != nil {
		t.Fatal(err)
	}
	if d.HasReason || d.ReasonName != "" || d.StackID != -1 {
		t.Errorf("reasonless drop decoded as %+v", d)
	}
}

func TestTCPStateNames(t *testing.T) {
	for s, want := range map[uint8]string{0: "UNKNOWN", 1: "ESTABLISHED", 2: "SYN_SENT", 7: "CLOSE", 12: "NEW_SYN_RECV", 13: "BOUND_INACTIVE", 14: "UNKNOWN"} {
		if got := TCPStateName(s); got != want {
			t.Errorf("TCPStateName(%d) = %q, want %q", s, got, want)
		}
	}
}

// BenchmarkDecodeRetransmit: decoding must not allocate (0 allocs/op).
func BenchmarkDecodeRetransmit(b *testing.B) {
	var e bpfobj.RetransRetransEvent
	e.Addrs.Family = 6
	e.Addrs.Saddr = netip.MustParseAddr("fd00::1").As16()
	raw := rawOf(&e)
	clock := NewClock()
	var r Retransmit
	b.ReportAllocs()
	for b.Loop() {
		if err := DecodeRetransmit(raw, clock, &r); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkDecodeDrop(b *testing.B) {
	var e bpfobj.DropsDropEvent
	e.Addrs.Family = 4
	e.Reason = 3
	raw := rawOf(&e)
	clock := NewClock()
	names := fakeNames{3: "NO_SOCKET"}
	var d Drop
	b.ReportAllocs()
	for b.Loop() {
		if err := DecodeDrop(raw, clock, names, &d); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
