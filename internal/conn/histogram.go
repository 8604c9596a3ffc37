// Package conn aggregates what the socket path reports per connection:
// RTT histograms, pure Go and independent of the kernel side.
package conn

import (
	"math/bits"
	"net/netip"
	"sort"
)

// Log2Buckets is how many buckets a Log2Hist has: bucket 0 holds 0 and 1
// µs, bucket i (i >= 1) holds [2^i, 2^(i+1)) µs, and the last holds
// everything from 2^31 µs (about 36 minutes) up.
const Log2Buckets = 32

// Log2Hist counts values in power-of-two buckets, as BCC's histograms do.
type Log2Hist struct {
	Counts [Log2Buckets]uint64
	Total  uint64
}

// Log2Bucket is the bucket of v.
func Log2Bucket(v uint32) int {
	if v < 2 {
		return 0
	}
	return bits.Len32(v) - 1
}

// BucketRange is the values bucket i holds: [lo, hi], both included.
func BucketRange(i int) (lo, hi uint64) {
	if i == 0 {
		return 0, 1
	}
	return 1 << i, 1<<(i+1) - 1
}

// Add counts one value.
func (h *Log2Hist) Add(v uint32) {
	h.Counts[Log2Bucket(v)]++
	h.Total++
}

// Span is the first and last bucket holding a value; ok is false when
// the histogram is empty.
func (h *Log2Hist) Span() (first, last int, ok bool) {
	first, last = -1, -1
	for i, n := range h.Counts {
		if n == 0 {
			continue
		}
		if first < 0 {
			first = i
		}
		last = i
	}
	return first, last, first >= 0
}

// HistKey is what a histogram is kept per: the parts of a connection's
// two ends that its HistBy keeps, the rest zero (an invalid address, port 0).
type HistKey struct {
	Local, Remote netip.AddrPort
}

// HistBy selects the key.
type HistBy int

const (
	ByRemotePort HistBy = iota
	ByLocalPort
	ByRemoteAddr
	ByLocalAddr
	ByConnection
)

var histByNames = [...]string{ByRemotePort: "rport", ByLocalPort: "lport", ByRemoteAddr: "raddr", ByLocalAddr: "laddr", ByConnection: "conn"}

// String is the --histogram-by name.
func (b HistBy) String() string { return histByNames[b] }

// ParseHistBy reads a --histogram-by name; ok is false for an unknown one.
func ParseHistBy(s string) (by HistBy, ok bool) {
	for i, n := range histByNames {
		if n == s {
			return HistBy(i), true
		}
	}
	return 0, false
}

// Key is the histogram key of the connection local -> remote.
func (b HistBy) Key(local, remote netip.AddrPort) HistKey {
	switch b {
	case ByLocalPort:
		return HistKey{Local: netip.AddrPortFrom(netip.Addr{}, local.Port())}
	case ByRemoteAddr:
		return HistKey{Remote: netip.AddrPortFrom(remote.Addr(), 0)}
	case ByLocalAddr:
		return HistKey{Local: netip.AddrPortFrom(local.Addr(), 0)}
	case ByConnection:
		return HistKey{Local: local, Remote: remote}
	}
	return HistKey{Remote: netip.AddrPortFrom(netip.Addr{}, remote.Port())}
}

// RTTHistograms keeps one Log2Hist per key.
type RTTHistograms struct {
	By    HistBy
	hists map[HistKey]*Log2Hist
	total uint64
}

// NewRTTHistograms makes an empty set.
func NewRTTHistograms(by HistBy) *RTTHistograms {
	return &RTTHistograms{By: by, hists: map[HistKey]*Log2Hist{}}
}

// Add counts one RTT sample of the connection local -> remote.
func (r *RTTHistograms) Add(local, remote netip.AddrPort, rttUS uint32) {
	k := r.By.Key(local, remote)
	h := r.hists[k]
	if h == nil {
		h = &Log2Hist{}
		r.hists[k] = h
	}
	h.Add(rttUS)
	r.total++
}

// Samples is how many samples all histograms hold together.
func (r *RTTHistograms) Samples() uint64 { return r.total }

// Keys lists the keys in a stable order: by remote end, then local end.
func (r *RTTHistograms) Keys() []HistKey {
	keys := make([]HistKey, 0, len(r.hists))
	for k := range r.hists {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if c := a.Remote.Compare(b.Remote); c != 0 {
			return c < 0
		}
		return a.Local.Compare(b.Local) < 0
	})
	return keys
}

// Get is the histogram of k, or nil.
func (r *RTTHistograms) Get(k HistKey) *Log2Hist { return r.hists[k] }

// Len is the number of histograms.
func (r *RTTHistograms) Len() int { return len(r.hists) }
