// Package live feeds the connection model (conn.Tracker) with the
// socket-path events between sock_diag snapshots: it loads and attaches the
// socket-path objects, reads their ring buffers, decodes each record and
// hands it to the tracker (and to an optional observer, the agent's
// metrics). `top` and `agent` share it.
package live

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"

	"github.com/tcplens/tcplens/internal/conn"
	"github.com/tcplens/tcplens/internal/events"
	"github.com/tcplens/tcplens/internal/probe"
)

// Sources are the socket-path sources a feed can attach, in the order it
// attaches them.
var Sources = []string{"retrans", "resets", "states", "drops"}

// Observer sees every decoded event after the tracker did, under the
// feed's lock. The pointers are only valid during the call.
type Observer interface {
	Retransmit(*events.Retransmit)
	Reset(*events.Reset)
	StateChange(*events.StateChange)
	Drop(*events.Drop)
}

// Options say what a feed attaches.
type Options struct {
	Sources  []string // some of Sources
	Filter   probe.SockFilter
	Observer Observer // may be nil
	// Errors is told about a source whose reader stopped on a bad record
	// (may be nil).
	Errors func(source string, err error)
}

// Feed is the attached sources and their readers.
type Feed struct {
	mu      *sync.Mutex
	tracker *conn.Tracker
	opts    Options

	// Missing says, for people, each source asked for that is not
	// attached and why.
	Missing []string
	// Failed is why each source asked for is not attached.
	Failed  map[string]error
	sources []*source
	wg      sync.WaitGroup
	stop    chan struct{}
}

type source struct {
	name     string
	tracer   *probe.SockTracer
	reader   *events.Reader
	lostSeen uint64
}

// pollEvery bounds how long Stop waits for a blocked read.
const pollEvery = 100 * time.Millisecond

// Start attaches the sources asked for and starts reading them; records
// reach tracker under mu. A source that cannot attach is named in
// Missing, and the rest go on.
func Start(mu *sync.Mutex, tracker *conn.Tracker, opts Options) *Feed {
	f := &Feed{mu: mu, tracker: tracker, opts: opts, stop: make(chan struct{}), Failed: map[string]error{}}
	if err := prepareBPF(); err != nil {
		f.failAll(opts.Sources, err)
		return f
	}
	clock := events.NewClock()
	// The reason names come from the kernel's BTF: read only for the
	// sources asked for (start-up time). A kernel without enum
	// sk_rst_reason (6.1) has no names: reasons stays a nil interface
	// then, never a nil *EnumNames inside one.
	var reasons events.EnumNamer
	if slices.Contains(opts.Sources, "resets") {
		if r, err := probe.ResetReasons(); err == nil && r != nil {
			reasons = r
		}
	}
	var dropReasons *probe.EnumNames
	dropErr := errors.New("not asked for")
	if slices.Contains(opts.Sources, "drops") {
		dropReasons, dropErr = probe.DropReasons()
	}
	obs := opts.Observer
	var rt events.Retransmit
	var rs events.Reset
	var sc events.StateChange
	var dr events.Drop
	t := tracker
	type spec struct {
		load   func(probe.SockTracerOptions) (*probe.SockTracer, error)
		handle func(raw []byte) error
	}
	specs := map[string]spec{
		"retrans": {probe.LoadRetrans, func(raw []byte) error {
			if err := events.DecodeRetransmit(raw, clock, &rt); err != nil {
				return err
			}
			t.Retransmit(rt.Time, rt.Local, rt.Remote, uint64(rt.Segments), rt.State, rt.Kind == events.RetransSynAck)
			if obs != nil {
				obs.Retransmit(&rt)
			}
			return nil
		}},
		"resets": {probe.LoadResets, func(raw []byte) error {
			if err := events.DecodeReset(raw, clock, reasons, &rs); err != nil {
				return err
			}
			t.ResetEvent(rs.Time, rs.Local, rs.Remote, rs.Direction == events.ResetSent)
			if obs != nil {
				obs.Reset(&rs)
			}
			return nil
		}},
		"states": {probe.LoadStates, func(raw []byte) error {
			if err := events.DecodeStateChange(raw, clock, &sc); err != nil {
				return err
			}
			if sc.Kind == events.StateKindLifetime {
				t.Lifetime(sc.Time, sc.Local, sc.Remote, sc.OldState, sc.Lifetime, sc.FromStart,
					sc.BytesAcked, sc.BytesReceived, sc.TotalRetrans, sc.PID, sc.CommString())
			} else {
				t.StateChange(sc.Time, sc.Local, sc.Remote, sc.OldState, sc.NewState)
				if sc.HandshakeKnown {
					t.Handshake(sc.Handshake)
				}
			}
			if obs != nil {
				obs.StateChange(&sc)
			}
			return nil
		}},
		"drops": {func(o probe.SockTracerOptions) (*probe.SockTracer, error) {
			if dropReasons == nil {
				return nil, fmt.Errorf("drop reasons: %w", dropErr)
			}
			d, err := probe.LoadDrops(o, probe.DropsConfig{}, dropReasons)
			if err != nil {
				return nil, err
			}
			return d.SockTracer, nil
		}, func(raw []byte) error {
			if err := events.DecodeDrop(raw, clock, dropReasons, &dr); err != nil {
				return err
			}
			t.Drop(dr.Time, dr.Local, dr.Remote, dr.ReasonName)
			if obs != nil {
				obs.Drop(&dr)
			}
			return nil
		}},
	}
	// Loading is mostly the verifier's work: the objects load side by
	// side, which shortens the start on two CPUs.
	type loaded struct {
		src *source
		err error
	}
	results := make([]loaded, len(Sources))
	var wg sync.WaitGroup
	for i, name := range Sources {
		if !slices.Contains(opts.Sources, name) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := attach(name, probe.SockTracerOptions{Filter: opts.Filter}, specs[name].load)
			results[i] = loaded{s, err}
		}()
	}
	wg.Wait()
	for i, name := range Sources {
		r := results[i]
		switch {
		case r.err != nil:
			f.Missing = append(f.Missing, name+": "+r.err.Error())
			f.Failed[name] = r.err
		case r.src != nil:
			f.sources = append(f.sources, r.src)
			f.wg.Add(1)
			go f.read(r.src, specs[name].handle)
		}
	}
	return f
}

// failAll says that nothing attached, and why.
func (f *Feed) failAll(sources []string, err error) {
	f.Missing = append(f.Missing, "none: "+err.Error())
	for _, s := range sources {
		f.Failed[s] = err
	}
}

// attach loads and attaches one object and opens its ring buffer.
func attach(name string, opts probe.SockTracerOptions, load func(probe.SockTracerOptions) (*probe.SockTracer, error)) (*source, error) {
	if err := probe.CheckPrivileges(name); err != nil {
		return nil, err
	}
	tr, err := load(opts)
	if err != nil {
		return nil, err
	}
	rd, err := events.NewReader(tr.Events, tr.Lost)
	if err != nil {
		tr.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &source{name: name, tracer: tr, reader: rd}, nil
}

// prepareBPF lifts the memlock limit on kernels that still account BPF
// memory that way (before 5.11); later kernels use memcg and need nothing.
func prepareBPF() error {
	if err := rlimit.RemoveMemlock(); err != nil {
		if errors.Is(err, os.ErrPermission) {
			return fmt.Errorf("load BPF programs: %w", probe.ErrPrivileges)
		}
		return fmt.Errorf("raise RLIMIT_MEMLOCK for BPF maps: %w", err)
	}
	return nil
}

// read hands each record to handle under the lock until stopped.
func (f *Feed) read(s *source, handle func([]byte) error) {
	defer f.wg.Done()
	for {
		select {
		case <-f.stop:
			return
		default:
		}
		s.reader.SetDeadline(time.Now().Add(pollEvery))
		raw, err := s.reader.Next()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue
		}
		if err != nil {
			return
		}
		f.mu.Lock()
		err = handle(raw)
		f.mu.Unlock()
		if err != nil {
			if f.opts.Errors != nil {
				f.opts.Errors(s.name, err)
			}
			return
		}
	}
}

// CountLost adds to the tracker what the sources lost since the last
// call. The caller holds the feed's lock.
func (f *Feed) CountLost() {
	for _, s := range f.sources {
		if k, err := s.reader.Lost(); err == nil {
			if n := k.RingBuffer + k.MapFull + k.UnseenClose; n >= s.lostSeen {
				f.tracker.Lost(n - s.lostSeen)
				s.lostSeen = n
			}
		}
	}
}

// SourceLoss is what one source did not see, by cause, since it started.
type SourceLoss struct {
	Source                         string
	RingBuffer, MapFull, Recursion uint64
}

// Loss reads each attached source's loss counters.
func (f *Feed) Loss() ([]SourceLoss, error) {
	var out []SourceLoss
	for _, s := range f.sources {
		k, err := s.reader.Lost()
		if err != nil {
			return nil, fmt.Errorf("%s: read loss counters: %w", s.name, err)
		}
		rec, err := s.tracer.RecursionMisses()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		// A CLOSE found unseen is one of the runs the kernel skipped;
		// some kernels (6.1) do not count those for tracepoint
		// programs, so take the larger of the two rather than both.
		out = append(out, SourceLoss{Source: s.name, RingBuffer: k.RingBuffer, MapFull: k.MapFull, Recursion: max(rec, k.UnseenClose)})
	}
	return out, nil
}

// Attached names the sources attached.
func (f *Feed) Attached() []string {
	var out []string
	for _, s := range f.sources {
		out = append(out, s.name)
	}
	return out
}

// Programs are the attached programs by source and program name.
func (f *Feed) Programs() map[string]map[string]*ebpf.Program {
	out := map[string]map[string]*ebpf.Program{}
	for _, s := range f.sources {
		out[s.name] = s.tracer.Programs
	}
	return out
}

// Stop stops the readers and detaches every source.
func (f *Feed) Stop() {
	close(f.stop)
	f.wg.Wait()
	for _, s := range f.sources {
		s.reader.Close()
		s.tracer.Close()
	}
	f.sources = nil
}
