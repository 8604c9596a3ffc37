package conn

import (
	"net/netip"
	"testing"
)

func TestRetransTally(t *testing.T) {
	a := netip.MustParseAddrPort("10.0.0.1:1000")
	b := netip.MustParseAddrPort("10.0.0.2:80")
	c := netip.MustParseAddrPort("[fd00::1]:2000")
	d := netip.MustParseAddrPort("[fd00::2]:443")
	mappedA := netip.MustParseAddrPort("[::ffff:10.0.0.1]:1000")

	tl := NewRetransTally(2)
	tl.Add(a, b, 2, false, false)
	tl.Add(mappedA, b, 3, false, true) // the same connection, v4-mapped
	tl.Add(c, d, 1, true, false)
	tl.Add(d, c, 7, false, false) // a third connection: past the limit
	if tl.Len() != 2 {
		t.Fatalf("Len = %d, want 2", tl.Len())
	}
	if f := tl.Folded(); f != (RetransCounts{Segments: 7, Events: 1}) {
		t.Fatalf("Folded = %+v, want the third connection's event", f)
	}
	got := tl.Drain()
	want := []RetransEntry{
		{Local: a, Remote: b, RetransCounts: RetransCounts{Segments: 5, Events: 2, Failed: 1}},
		{Local: c, Remote: d, RetransCounts: RetransCounts{Segments: 1, Events: 1, SynAcks: 1}},
	}
	if len(got) != len(want) {
		t.Fatalf("Drain = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if tl.Len() != 0 || tl.Folded() != (RetransCounts{}) || len(tl.Drain()) != 0 {
		t.Fatal("Drain did not start over")
	}
}

func TestRetransTallyTiesByEnds(t *testing.T) {
	tl := NewRetransTally(0)
	for _, s := range []string{"10.0.0.3:1", "10.0.0.1:1", "10.0.0.2:1"} {
		tl.Add(netip.MustParseAddrPort(s), netip.MustParseAddrPort("10.0.0.9:80"), 1, false, false)
	}
	got := tl.Drain()
	for i, w := range []string{"10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1"} {
		if got[i].Local.String() != w {
			t.Fatalf("order %v: entry %d is %v, want %s", got, i, got[i].Local, w)
		}
	}
}
