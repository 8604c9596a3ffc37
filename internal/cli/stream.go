package cli

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/tcplens/tcplens/internal/events"
)

// recordReader is what streamLoop and the end-of-run summary need of a
// socket-path object's ring buffer: events.Reader in tcplens, a fake fed
// from recorded bytes in tests (stream_test.go), so that --count,
// --duration, the drain on stop and the loss summary are tested without
// root.
type recordReader interface {
	// Next returns the next record, os.ErrDeadlineExceeded once the
	// deadline passes, or events.ErrClosed after Close.
	Next() ([]byte, error)
	SetDeadline(t time.Time)
	// Pending is how many bytes of records wait to be read.
	Pending() int
	// Lost is what the BPF side counted as not delivered, by cause.
	Lost() (events.KernelLoss, error)
	Close() error
}

var _ recordReader = (*events.Reader)(nil)

// streamLoop drives a socket-path command: it hands every ring buffer
// record to handle, calls tick every interval (when tick is set), and stops
// on a signal, after --duration, or after --count: records that handle
// counted, or, for a command that reports per tick, ticks. On stop it drains what is already in the ring buffer, so
// records that arrived before the stop are not lost.
type streamLoop struct {
	c      *common
	reader recordReader
	// handle decodes and prints one record; it returns whether the record
	// counts towards --count (filtered-out records do not).
	handle func(raw []byte) (counted bool, err error)
	tick   func(now time.Time) error // optional periodic report; then --count counts ticks
}

// pollEvery bounds how long a stop request waits for a blocked read.
const pollEvery = 100 * time.Millisecond

func (l *streamLoop) run(ctx context.Context) error {
	var deadline time.Time
	if l.c.duration > 0 {
		deadline = time.Now().Add(l.c.duration)
	}
	nextTick := time.Now().Add(l.c.interval)
	counted, ticks := 0, 0
	for {
		now := time.Now()
		if ctx.Err() != nil || (!deadline.IsZero() && !now.Before(deadline)) {
			return l.drain()
		}
		if l.tick != nil && !now.Before(nextTick) {
			if err := l.tick(now); err != nil {
				return err
			}
			nextTick = nextTick.Add(l.c.interval)
			if ticks++; l.c.count > 0 && ticks >= l.c.count {
				return nil
			}
		}
		wake := now.Add(pollEvery)
		if l.tick != nil && nextTick.Before(wake) {
			wake = nextTick
		}
		if !deadline.IsZero() && deadline.Before(wake) {
			wake = deadline
		}
		l.reader.SetDeadline(wake)
		raw, err := l.reader.Next()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue
		}
		if err != nil {
			return err
		}
		ok, err := l.handle(raw)
		if err != nil {
			return err
		}
		if ok && l.tick == nil {
			counted++
			if l.c.count > 0 && counted >= l.c.count {
				return nil
			}
		}
	}
}

// drain handles the records already waiting, without blocking.
func (l *streamLoop) drain() error {
	for l.reader.Pending() > 0 {
		l.reader.SetDeadline(time.Now())
		raw, err := l.reader.Next()
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil
			}
			return err
		}
		if _, err := l.handle(raw); err != nil {
			return err
		}
	}
	return nil
}
