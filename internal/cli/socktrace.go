package cli

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/tcplens/tcplens/internal/events"
	"github.com/tcplens/tcplens/internal/output"
	"github.com/tcplens/tcplens/internal/probe"
)

// sockTraceFlags are the flags of the tracepoint commands (retrans, resets,
// drops): the socket filters and a hidden ring buffer size for tests.
type sockTraceFlags struct {
	sockFlags
	text            textFlags
	ringBufferBytes uint32
}

func (s *sockTraceFlags) register(fs *pflag.FlagSet) {
	s.sockFlags.register(fs)
	s.text.register(fs)
	fs.Uint32Var(&s.ringBufferBytes, "ring-buffer-bytes", 0, "size the event ring buffer to `BYTES` (a power of two, at least a page)")
	fs.MarkHidden("ring-buffer-bytes") // for tests that provoke loss
}

// options checks the flags and makes the loader's options.
func (s *sockTraceFlags) options() (probe.SockTracerOptions, error) {
	f, err := s.filter()
	if err != nil {
		return probe.SockTracerOptions{}, err
	}
	if _, err := s.textStyle(); err != nil {
		return probe.SockTracerOptions{}, err
	}
	return probe.SockTracerOptions{Filter: f, RingBufferBytes: s.ringBufferBytes}, nil
}

// textStyle is the text layout the flags ask for; relative times count
// from now.
func (s *sockTraceFlags) textStyle() (textStyle, error) {
	family := 0
	if s.ipv4 {
		family = 4
	} else if s.ipv6 {
		family = 6
	}
	return s.text.style(time.Now(), family)
}

// sockTrace is a loaded, attached socket-path object and its reader.
type sockTrace struct {
	tracer *probe.SockTracer // nil when tests fake the kernel side
	reader recordReader
}

// startSockTrace is startKernelSockTrace, or in tests a fake that hands
// recorded records to the commands without loading anything.
var startSockTrace = startKernelSockTrace

// startKernelSockTrace loads and attaches one object, opens its ring
// buffer and writes the ready file, or does none of it.
func startKernelSockTrace(c *common, what string, opts probe.SockTracerOptions,
	load func(probe.SockTracerOptions) (*probe.SockTracer, error)) (*sockTrace, error) {
	if err := probe.CheckPrivileges(what); err != nil {
		return nil, err
	}
	if err := prepareBPF(); err != nil {
		return nil, err
	}
	tr, err := load(opts)
	if err != nil {
		return nil, err
	}
	rd, err := events.NewReader(tr.Events, tr.Lost)
	if err != nil {
		tr.Close()
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := writeReadyFile(c.readyFile, what+" tracepoints attached"); err != nil {
		rd.Close()
		tr.Close()
		return nil, err
	}
	return &sockTrace{tracer: tr, reader: rd}, nil
}

func (s *sockTrace) Close() error {
	rerr := s.reader.Close()
	if s.tracer == nil {
		return rerr
	}
	return errors.Join(rerr, s.tracer.Close())
}

// flushWhenIdle flushes JSON lines once the ring buffer is empty: one
// write per burst, yet nothing waits in the buffer while idle.
func (s *sockTrace) flushWhenIdle(out *output.JSONLines) error {
	if s.reader.Pending() > 0 {
		return nil
	}
	return out.Flush()
}

// eventReport prints a socket-path command's records as they come and its
// summary at the end.
type eventReport interface {
	record(raw []byte) error
	summary(elapsed time.Duration, loss output.Loss) error
}

// streamed is the streamLoop handler of a command that prints every record
// as it comes: each counts towards --count, and JSON lines (out, nil for
// text) are flushed once a burst has been read.
func (s *sockTrace) streamed(r eventReport, out *output.JSONLines) func(raw []byte) (bool, error) {
	return func(raw []byte) (bool, error) {
		if err := r.record(raw); err != nil {
			return false, err
		}
		if out != nil {
			return true, s.flushWhenIdle(out)
		}
		return true, nil
	}
}

// finish prints the summary with what was lost, even after a runtime
// error, and returns the first error.
func (s *sockTrace) finish(runErr error, r eventReport, start time.Time) error {
	loss, err := s.loss()
	if err != nil && runErr == nil {
		runErr = err
	}
	if err := r.summary(time.Since(start), loss); err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}

// loss adds up what the object did not see: records the ring buffer had no
// room for and per-socket entries it could not make (counted by the BPF
// side), and runs the kernel skipped for recursion (counted by the kernel,
// or found by states at tcp_destroy_sock).
func (s *sockTrace) loss() (output.Loss, error) {
	k, err := s.reader.Lost()
	if err != nil {
		return output.Loss{}, err
	}
	var rec uint64
	if s.tracer != nil { // nil when tests fake the kernel side
		if rec, err = s.tracer.RecursionMisses(); err != nil {
			return output.Loss{}, err
		}
	}
	// A CLOSE found unseen is one of the runs the kernel skipped; some
	// kernels (6.1) do not count those for tracepoint programs, so take
	// the larger of the two rather than both.
	rec = max(rec, k.UnseenClose)
	return output.NewLoss(output.LostByCause{RingBuffer: k.RingBuffer, MapFull: k.MapFull, Recursion: rec}), nil
}

// jsonOut is out in JSON mode and nil in text mode.
func jsonOut(format output.Format, out *output.JSONLines) *output.JSONLines {
	if format == output.JSON {
		return out
	}
	return nil
}

// sockCommandFlags is the flag set every socket-path command starts from:
// the shared flags and the socket filters. They stream by default: a
// command with a periodic report says what --interval does there, one
// without calls withoutInterval.
func sockCommandFlags(name string) (*pflag.FlagSet, *common, *sockTraceFlags) {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	c, sf := &common{}, &sockTraceFlags{}
	c.register(fs, 0)
	sf.register(fs)
	return fs, c, sf
}

// parseSockTrace parses and checks a socket-path command's flags.
func parseSockTrace(fs *pflag.FlagSet, env Env, args []string, c *common, sf *sockTraceFlags) (probe.SockTracerOptions, error) {
	if err := parseFlags(fs, env, args); err != nil {
		return probe.SockTracerOptions{}, err
	}
	if err := c.validate(); err != nil {
		return probe.SockTracerOptions{}, err
	}
	return sf.options()
}
