package conn

import (
	"net/netip"
	"testing"
)

func TestLog2Bucket(t *testing.T) {
	for _, c := range []struct {
		v    uint32
		want int
	}{{0, 0}, {1, 0}, {2, 1}, {3, 1}, {4, 2}, {7, 2}, {8, 3}, {1023, 9}, {1024, 10}, {1<<31 - 1, 30}, {1 << 31, 31}, {^uint32(0), 31}} {
		b := Log2Bucket(c.v)
		if b != c.want {
			t.Errorf("Log2Bucket(%d) = %d, want %d", c.v, b, c.want)
		}
		if lo, hi := BucketRange(b); uint64(c.v) < lo || uint64(c.v) > hi {
			t.Errorf("%d is outside its bucket %d's range [%d, %d]", c.v, b, lo, hi)
		}
	}
	// Ranges tile the numbers with no gap.
	for i := 1; i < Log2Buckets; i++ {
		_, prevHi := BucketRange(i - 1)
		if lo, _ := BucketRange(i); lo != prevHi+1 {
			t.Errorf("bucket %d starts at %d, bucket %d ends at %d", i, lo, i-1, prevHi)
		}
	}
}

func TestRTTHistogramsKeys(t *testing.T) {
	l1, l2 := netip.MustParseAddrPort("10.0.0.1:40000"), netip.MustParseAddrPort("10.0.0.1:40001")
	l3 := netip.MustParseAddrPort("10.0.0.9:40000")
	r80, r443 := netip.MustParseAddrPort("10.0.0.2:80"), netip.MustParseAddrPort("10.0.0.2:443")
	r80b := netip.MustParseAddrPort("10.0.0.3:80")
	for _, c := range []struct {
		by   HistBy
		keys int
	}{{ByRemotePort, 2}, {ByLocalPort, 2}, {ByRemoteAddr, 2}, {ByLocalAddr, 2}, {ByConnection, 4}} {
		h := NewRTTHistograms(c.by)
		h.Add(l1, r80, 100)
		h.Add(l2, r80, 3000)
		h.Add(l1, r443, 5)
		h.Add(l3, r80b, 7)
		keys := h.Keys()
		if len(keys) != c.keys {
			t.Fatalf("by %d: %d keys, want %d", c.by, len(keys), c.keys)
		}
		var total uint64
		for _, k := range keys {
			total += h.Get(k).Total
		}
		if total != 4 || h.Samples() != 4 {
			t.Errorf("by %s: %d samples counted (Samples %d), want 4", c.by, total, h.Samples())
		}
		if name := c.by.String(); name == "" {
			t.Errorf("HistBy %d has no name", c.by)
		} else if by, ok := ParseHistBy(name); !ok || by != c.by {
			t.Errorf("ParseHistBy(%q) = %v, %v", name, by, ok)
		}
	}
	if keys := NewRTTHistograms(ByRemotePort).Keys(); len(keys) != 0 {
		t.Errorf("empty set has keys %v", keys)
	}
	h0 := NewRTTHistograms(ByRemotePort)
	h0.Add(l1, r443, 1)
	h0.Add(l1, r80, 1)
	if keys := h0.Keys(); keys[0].Remote.Port() != 80 || keys[1].Remote.Port() != 443 {
		t.Errorf("keys out of order: %v", keys)
	}
	h := NewRTTHistograms(ByRemotePort)
	h.Add(l1, r80, 100)
	h.Add(l2, r80, 3000)
	first, last, ok := h.Get(ByRemotePort.Key(l1, r80)).Span()
	if !ok || first != 6 || last != 11 {
		t.Errorf("span %d..%d %v, want 6..11", first, last, ok)
	}
	if _, _, ok := (&Log2Hist{}).Span(); ok {
		t.Errorf("empty histogram has a span")
	}
}
