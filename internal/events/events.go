// Package events reads the socket path's BPF ring buffers: records decode
// in place without allocating, kernel timestamps become wall-clock times,
// and what the kernel could not deliver is counted.
package events

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

// Reader reads one object's `events` ring buffer and its `lost` counter.
type Reader struct {
	rb   *ringbuf.Reader
	lost *ebpf.Map
	rec  ringbuf.Record
}

// NewReader opens the ring buffer; lost is the per-CPU counter that the
// BPF side bumps when a reservation fails (bpf/sock_common.h).
func NewReader(events, lost *ebpf.Map) (*Reader, error) {
	rb, err := ringbuf.NewReader(events)
	if err != nil {
		return nil, fmt.Errorf("open ring buffer: %w", err)
	}
	return &Reader{rb: rb, lost: lost}, nil
}

// ErrClosed is returned by Next once Close was called.
var ErrClosed = ringbuf.ErrClosed

// Next blocks until a record arrives and returns its bytes, valid until the
// next call. It reuses one buffer: no allocation per record.
func (r *Reader) Next() ([]byte, error) {
	if err := r.rb.ReadInto(&r.rec); err != nil {
		if errors.Is(err, ringbuf.ErrClosed) {
			return nil, ErrClosed
		}
		return nil, err
	}
	return r.rec.RawSample, nil
}

// SetDeadline makes a blocked Next return os.ErrDeadlineExceeded at t.
func (r *Reader) SetDeadline(t time.Time) { r.rb.SetDeadline(t) }

// Pending says how many bytes wait in the ring buffer.
func (r *Reader) Pending() int { return r.rb.AvailableBytes() }

// Close unblocks Next and releases the ring buffer.
func (r *Reader) Close() error { return r.rb.Close() }

// Keys of the per-CPU `lost` array (LOST_* in bpf/sock_common.h).
const (
	lostRingBuffer  = 0
	lostMapFull     = 1
	lostUnseenClose = 2
)

// KernelLoss is what the BPF side counted itself as not delivered.
type KernelLoss struct {
	RingBuffer uint64 // records the ring buffer had no room for
	MapFull    uint64 // per-socket map entries that could not be made
	// UnseenClose: sockets freed whose CLOSE the program did not see
	// (states): runs skipped for recursion, found after the fact.
	UnseenClose uint64
}

// Lost reads the per-CPU loss counters, summed over CPUs.
func (r *Reader) Lost() (KernelLoss, error) {
	var l KernelLoss
	for _, c := range []struct {
		key uint32
		dst *uint64
	}{{lostRingBuffer, &l.RingBuffer}, {lostMapFull, &l.MapFull}, {lostUnseenClose, &l.UnseenClose}} {
		var perCPU []uint64
		if err := r.lost.Lookup(c.key, &perCPU); err != nil {
			return KernelLoss{}, fmt.Errorf("read lost-record counter %d: %w", c.key, err)
		}
		for _, n := range perCPU {
			*c.dst += n
		}
	}
	return l, nil
}

// Cast views raw as a *T without copying. It returns false when raw is too
// short. T must be a bpf2go-generated struct (fixed layout, no pointers);
// ring buffer samples are 8-byte aligned.
func Cast[T any](raw []byte) (*T, bool) {
	var zero T
	if len(raw) < int(unsafe.Sizeof(zero)) {
		return nil, false
	}
	return (*T)(unsafe.Pointer(unsafe.SliceData(raw))), true
}

// Clock turns bpf_ktime_get_ns() (CLOCK_MONOTONIC) into wall-clock time.
type Clock struct {
	wallAtZero time.Time // wall time when CLOCK_MONOTONIC read 0
}

// NewClock measures the offset between the monotonic and the wall clock,
// taking the reading with the smallest gap of a few tries.
func NewClock() Clock {
	best := time.Duration(1<<63 - 1)
	var c Clock
	for i := 0; i < 5; i++ {
		var ts unix.Timespec
		before := time.Now()
		unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
		after := time.Now()
		if gap := after.Sub(before); gap < best {
			best = gap
			mid := before.Add(gap / 2)
			c.wallAtZero = mid.Add(-time.Duration(ts.Nano()))
		}
	}
	return c
}

// ClockFrom is a Clock whose monotonic zero was at wallAtZero: for tests
// and for replaying records.
func ClockFrom(wallAtZero time.Time) Clock { return Clock{wallAtZero: wallAtZero} }

// Wall converts a kernel monotonic timestamp.
func (c Clock) Wall(ktimeNs uint64) time.Time {
	return c.wallAtZero.Add(time.Duration(ktimeNs))
}

// Addr makes an address from the 16 wire-order bytes the BPF side fills
// (IPv4 in the first 4) and its family (4 or 6). A v4-mapped IPv6 address
// (an IPv4 peer of a dual-stack socket) comes out as IPv4: the BPF side
// already converts those, and this keeps output right whatever fills b.
func Addr(family uint8, b [16]byte) netip.Addr {
	if family == 4 {
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	return netip.AddrFrom16(b).Unmap()
}
