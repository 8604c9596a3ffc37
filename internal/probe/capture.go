package probe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"
	"unsafe"

	"github.com/cilium/ebpf/ringbuf"
)

// CaptureReader reads the capture stage's records.
type CaptureReader struct {
	rd       *ringbuf.Reader
	rec      ringbuf.Record
	deadline time.Time
}

const captureEventSize = int(unsafe.Sizeof(CaptureEvent{}))

// NewCaptureReader opens the capture ring of a path loaded with Capture.
func (p *PacketPath) NewCaptureReader() (*CaptureReader, error) {
	rd, err := ringbuf.NewReader(p.Maps.CaptureRing)
	if err != nil {
		return nil, fmt.Errorf("open capture ring buffer: %w", err)
	}
	return &CaptureReader{rd: rd}, nil
}

// ErrNoRecord: the deadline passed with the ring empty.
var ErrNoRecord = errors.New("no capture record before the deadline")

// Read returns the next record's header and frame bytes, which stay
// valid until the next Read. With the ring empty it waits until deadline
// (the kernel side wakes the reader only once the ring fills a little, so
// a caller polls) and returns ErrNoRecord. A deadline already past still
// returns what the ring holds: a caller keeps one deadline while records
// flow (reading the clock for every record was an eighth of capture's
// CPU) and sets the next when Read returns ErrNoRecord.
func (r *CaptureReader) Read(deadline time.Time) (CaptureEvent, []byte, error) {
	if !deadline.Equal(r.deadline) {
		r.deadline = deadline
		r.rd.SetDeadline(deadline)
	}
	if err := r.rd.ReadInto(&r.rec); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return CaptureEvent{}, nil, ErrNoRecord
		}
		return CaptureEvent{}, nil, fmt.Errorf("read capture ring buffer: %w", err)
	}
	b := r.rec.RawSample
	if len(b) < captureEventSize {
		return CaptureEvent{}, nil, fmt.Errorf("capture record of %d bytes, shorter than its header", len(b))
	}
	ev := CaptureEvent{
		TsNs:    binary.LittleEndian.Uint64(b[0:]),
		OrigLen: binary.LittleEndian.Uint32(b[8:]),
		CapLen:  binary.LittleEndian.Uint32(b[12:]),
		Slot:    binary.LittleEndian.Uint16(b[16:]),
		Dir:     b[18],
	}
	data := b[captureEventSize:]
	if int(ev.CapLen) > len(data) {
		return CaptureEvent{}, nil, fmt.Errorf("capture record says %d bytes, holds %d", ev.CapLen, len(data))
	}
	return ev, data[:ev.CapLen], nil
}

// Close releases the reader.
func (r *CaptureReader) Close() error { return r.rd.Close() }
