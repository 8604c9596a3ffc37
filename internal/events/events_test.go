package events

import (
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestClockMatchesWallClock(t *testing.T) {
	c := NewClock()
	var ts unix.Timespec
	before := time.Now()
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	got := c.Wall(uint64(ts.Nano()))
	// The conversion is off by at most the time the reads took plus the
	// offset measurement's own gap: a millisecond is generous.
	if got.Before(before.Add(-time.Millisecond)) || got.After(after.Add(time.Millisecond)) {
		t.Errorf("monotonic %d -> %v, want between %v and %v", ts.Nano(), got, before, after)
	}
	// Later kernel times map to later wall times, nanosecond for nanosecond.
	if d := c.Wall(uint64(ts.Nano()) + 1500).Sub(got); d != 1500*time.Nanosecond {
		t.Errorf("1500ns later maps to %v later", d)
	}
}

type sample struct {
	A uint64
	B [16]byte
	C uint32
	_ uint32
}

func TestCastViewsBytesInPlace(t *testing.T) {
	raw := make([]byte, 32)
	raw[0] = 7
	raw[8] = 10
	raw[24] = 1
	s, ok := Cast[sample](raw)
	if !ok || s.A != 7 || s.B[0] != 10 || s.C != 1 {
		t.Fatalf("Cast = %+v, %v", s, ok)
	}
	raw[0] = 9 // a view, not a copy
	if s.A != 9 {
		t.Errorf("Cast copied the record")
	}
	if _, ok := Cast[sample](raw[:31]); ok {
		t.Errorf("Cast accepted a short record")
	}
}

func TestAddr(t *testing.T) {
	var b [16]byte
	copy(b[:], []byte{192, 0, 2, 7})
	if got := Addr(4, b); got != netip.MustParseAddr("192.0.2.7") {
		t.Errorf("IPv4 %v", got)
	}
	want := netip.MustParseAddr("fd00::5")
	if got := Addr(6, want.As16()); got != want {
		t.Errorf("IPv6 %v", got)
	}
	// An IPv4 peer of a dual-stack socket is IPv4 in every output.
	if got := Addr(6, netip.MustParseAddr("::ffff:192.0.2.7").As16()); got != netip.MustParseAddr("192.0.2.7") {
		t.Errorf("v4-mapped %v, want 192.0.2.7", got)
	}
}

func BenchmarkCast(b *testing.B) {
	raw := make([]byte, 32)
	b.ReportAllocs()
	var sum uint64
	for i := 0; i < b.N; i++ {
		s, _ := Cast[sample](raw)
		sum += s.A
	}
	_ = sum
}
