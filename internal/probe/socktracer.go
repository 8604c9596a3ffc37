package probe

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// SockTracerOptions configure a socket-path object (retrans, resets,
// drops) before it is loaded.
type SockTracerOptions struct {
	Filter SockFilter
	// RingBufferBytes overrides the `events` ring buffer's size when not
	// 0: a power of two, at least one page. Tests make it tiny to provoke
	// loss.
	RingBufferBytes uint32
}

// SockTracer is one socket-path object loaded and attached to its
// tracepoints. Events and Lost feed events.NewReader.
type SockTracer struct {
	Events, Lost *ebpf.Map
	Programs     map[string]*ebpf.Program
	// Without lists the optional tracepoints this kernel lacks: their
	// programs were left out, and what they add is missing.
	Without []Tracepoint

	coll  *ebpf.Collection
	links []link.Link
	// backups are programs that only handle what the kernel skipped
	// another program for: their own misses are not losses.
	backups map[string]bool
}

// tracepointProgram pairs a program of the object with where it attaches.
type tracepointProgram struct {
	prog string
	tp   Tracepoint
	// backup: a second copy attached after the main program on the same
	// tracepoint, handling only the events the kernel skipped the
	// main one for (recursion); it counts them under LOST_RECOVERED.
	backup bool
}

// lostRecovered is LOST_RECOVERED of bpf/sock_common.h: the key of the
// `lost` array where a backup program counts the events it handled.
const lostRecovered = 3

// optionalTracepoints add something to a command without being needed:
// where the kernel lacks one, its program is not loaded and the command
// runs without what it adds (SockTracer.Without, doctor's "ready, without").
var optionalTracepoints = map[Tracepoint]string{
	TPSockSendLength: "owner of accepted connections",
	TPSockRecvLength: "owner of accepted connections",
}

// loadSockTracer loads spec (after configure, when set, has changed it)
// and attaches each program to its tracepoint, or attaches nothing.
func loadSockTracer(what string, spec *ebpf.CollectionSpec, opts SockTracerOptions,
	configure func(*ebpf.CollectionSpec) error, progs []tracepointProgram) (*SockTracer, error) {
	if err := ApplySockFilter(spec, opts.Filter); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if n := opts.RingBufferBytes; n != 0 {
		page := uint32(os.Getpagesize())
		if n < page || n&(n-1) != 0 {
			return nil, fmt.Errorf("%s: ring buffer size %d: must be a power of two of at least %d", what, n, page)
		}
		spec.Maps["events"].MaxEntries = n
	}
	if configure != nil {
		if err := configure(spec); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return nil, explainLoadError("load "+what+" programs", err)
	}
	t := &SockTracer{Events: coll.Maps["events"], Lost: coll.Maps["lost"], Programs: coll.Programs, coll: coll,
		backups: map[string]bool{}}
	for _, p := range progs {
		prog := coll.Programs[p.prog]
		if prog == nil {
			t.Close()
			return nil, fmt.Errorf("%s: object has no program %s", what, p.prog)
		}
		l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: p.tp.Name, Program: prog})
		if err != nil {
			_, optional := optionalTracepoints[p.tp]
			if errors.Is(err, os.ErrNotExist) && optional {
				// Not in this kernel: run without what it adds.
				if !slices.Contains(t.Without, p.tp) {
					t.Without = append(t.Without, p.tp)
				}
				delete(t.Programs, p.prog)
				prog.Close()
				continue
			}
			t.Close()
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("attach %s to %s: %w: this kernel has no such tracepoint", what, p.tp, ErrUnsupported)
			}
			return nil, fmt.Errorf("attach %s to %s: %w", what, p.tp, explainAttach(err))
		}
		if p.backup {
			t.backups[p.prog] = true
		}
		t.links = append(t.links, l)
	}
	return t, nil
}

// Close detaches every program and releases the object.
func (t *SockTracer) Close() error {
	var errs []error
	for _, l := range t.links {
		if err := l.Close(); err != nil {
			errs = append(errs, fmt.Errorf("detach: %w", err))
		}
	}
	t.links = nil
	if t.coll != nil {
		t.coll.Close()
		t.coll = nil
	}
	return errors.Join(errs...)
}

// RecursionMisses adds up the runs the kernel skipped for each program of
// the object because the program was already running on that CPU (raw
// tracepoints): events the object never saw. Events a backup program handled in place
// of a skipped run are seen, so they are taken off, and a backup's own
// skipped runs are left out (the main program handled those, or it was
// skipped too and counted). Kernels before 5.12 do not report misses (0).
func (t *SockTracer) RecursionMisses() (uint64, error) {
	// Recoveries first: each follows a counted miss, so read in this
	// order they never exceed the misses.
	var recovered uint64
	if len(t.backups) > 0 {
		var perCPU []uint64
		if err := t.Lost.Lookup(uint32(lostRecovered), &perCPU); err != nil {
			return 0, fmt.Errorf("read recovered-event counter: %w", err)
		}
		for _, n := range perCPU {
			recovered += n
		}
	}
	var sum uint64
	for name, p := range t.Programs {
		if t.backups[name] {
			continue
		}
		// Counted whether or not BPF statistics are enabled.
		st, err := p.Stats()
		if err != nil {
			return 0, fmt.Errorf("read recursion misses of program %s: %w", name, err)
		}
		sum += st.RecursionMisses
	}
	return sum - min(sum, recovered), nil
}
