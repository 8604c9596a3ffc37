package cli

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/spf13/pflag"

	"github.com/tcplens/tcplens/internal/output"
	"github.com/tcplens/tcplens/internal/probe"
)

func init() {
	register("syn", "who is trying to connect to whom: SYNs per 4-tuple and per source", runSyn)
}

func runSyn(ctx context.Context, env Env, args []string) error {
	fs := pflag.NewFlagSet("syn", pflag.ContinueOnError)
	var c common
	c.register(fs, time.Second)
	c.registerPacket(fs)
	var maxTuples, maxSources uint32
	var top int
	var dropPorts []uint
	fs.Uint32Var(&maxTuples, "max-tuples", 16384, "track at most `N` 4-tuples (LRU); SYNs of evicted tuples are counted as untracked")
	fs.Uint32Var(&maxSources, "max-sources", 16384, "track at most `N` source addresses (LRU)")
	fs.IntVar(&top, "top", 10, "show the `N` busiest tuples and sources per interval (0: all)")
	fs.UintSliceVar(&dropPorts, "drop-syn-port", nil, "drop SYNs (without ACK) to `PORT` and count them (repeatable)")
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return err
	}
	if maxTuples < 1 || maxSources < 1 {
		return usagef("--max-tuples and --max-sources must be at least 1")
	}
	if top < 0 {
		return usagef("--top must not be negative, not %d", top)
	}
	ports, err := parsePorts("drop-syn-port", dropPorts)
	if err != nil {
		return err
	}

	pp, err := startPacketPath(&c, probe.PacketConfig{
		TrackSYN: true, MaxTuples: maxTuples, MaxSources: maxSources, DropSYNPorts: ports,
	})
	if err != nil {
		return err
	}
	defer pp.Close()
	if c.format == output.Text {
		fmt.Fprintf(env.Stderr, "tcplens syn: watching %s; Ctrl-C to stop\n", describeAttachments(pp.Attached))
	}

	start := time.Now()
	tr := newSynTracker(pp.Attached, top)
	out := output.NewJSONLines(env.Stdout)
	runErr := runPeriodic(ctx, &c, func(now time.Time) error {
		snap, err := readSynSnapshot(pp)
		if err != nil {
			return err
		}
		rep := tr.interval(snap)
		if c.format == output.JSON {
			if err := rep.emitJSON(out, now); err != nil {
				return err
			}
			return out.Flush()
		}
		rep.writeText(env.Stdout, now)
		return nil
	})

	snap, err := readSynSnapshot(pp)
	if err != nil {
		return err
	}
	sum := tr.summary(snap, time.Since(start))
	if c.format == output.JSON {
		if err := out.Emit(sum); err != nil {
			return err
		}
		if err := out.Flush(); err != nil {
			return err
		}
	} else {
		writeSynSummary(env.Stdout, sum)
	}
	return runErr
}

// synSnapshot is everything the SYN maps and counters hold at one moment.
type synSnapshot struct {
	counters []probe.FlagCounters // by slot
	tuples   map[probe.SYNTuple]uint64
	sources  map[probe.SYNSource]uint64
}

func readSynSnapshot(pp *probe.PacketPath) (synSnapshot, error) {
	var s synSnapshot
	var err error
	if s.counters, err = readAllCounters(pp); err != nil {
		return s, err
	}
	if s.tuples, err = pp.SYNTuples(); err != nil {
		return s, err
	}
	if s.sources, err = pp.SYNSources(); err != nil {
		return s, err
	}
	return s, nil
}

// synTracker turns the kernel's cumulative counts into per-interval ones.
//
// The LRU maps hold counts since start; a tuple the kernel evicted loses
// its count. So per interval, a tuple's count is the growth since the last
// snapshot (or its whole count when it was evicted and came back), and the
// SYNs not accounted for by any tracked tuple are untracked.
type synTracker struct {
	attached    []probe.Attachment
	top         int
	prevTuples  map[probe.SYNTuple]uint64
	prevSources map[probe.SYNSource]uint64
	prevCounts  []probe.FlagCounters
	// untracked SYNs reported so far, per slot; cumulative and monotonic.
	untracked, untrackedSources []uint64
}

func newSynTracker(attached []probe.Attachment, top int) *synTracker {
	return &synTracker{
		attached:         attached,
		top:              top,
		prevTuples:       map[probe.SYNTuple]uint64{},
		prevSources:      map[probe.SYNSource]uint64{},
		prevCounts:       make([]probe.FlagCounters, len(attached)),
		untracked:        make([]uint64, len(attached)),
		untrackedSources: make([]uint64, len(attached)),
	}
}

type countedTuple struct {
	probe.SYNTuple
	count uint64
}

type countedSource struct {
	probe.SYNSource
	count uint64
}

// synIfaceReport is one interface's interval.
type synIfaceReport struct {
	name                            string
	syn, synAck, dropped, untracked uint64
	tuples                          []countedTuple
	sources                         []countedSource
}

type synReport []synIfaceReport

func growth(cur, prev uint64, had bool) uint64 {
	if had && cur >= prev {
		return cur - prev
	}
	return cur // new, or evicted and inserted again
}

func (t *synTracker) interval(s synSnapshot) synReport {
	rep := make(synReport, len(t.attached))
	for i, a := range t.attached {
		d := probe.SubCounters(s.counters[i], t.prevCounts[i])
		rep[i] = synIfaceReport{name: a.Interface.Name, syn: d.SynNoAck, synAck: d.SynAck, dropped: d.Dropped}
	}
	for k, v := range s.tuples {
		prev, had := t.prevTuples[k]
		if g := growth(v, prev, had); g > 0 && int(k.Slot) < len(rep) {
			rep[k.Slot].tuples = append(rep[k.Slot].tuples, countedTuple{k, g})
		}
	}
	for k, v := range s.sources {
		prev, had := t.prevSources[k]
		if g := growth(v, prev, had); g > 0 && int(k.Slot) < len(rep) {
			rep[k.Slot].sources = append(rep[k.Slot].sources, countedSource{k, g})
		}
	}
	tupleSums, sourceSums := t.sums(s)
	for i := range rep {
		// A SYN is counted before its tuple is, so a snapshot taken in
		// between sees a transient gap: only ever report growth.
		if u := sat(s.counters[i].SynNoAck, tupleSums[i]); u > t.untracked[i] {
			rep[i].untracked = u - t.untracked[i]
			t.untracked[i] = u
		}
		if u := sat(s.counters[i].SynNoAck, sourceSums[i]); u > t.untrackedSources[i] {
			t.untrackedSources[i] = u
		}
		sort.Slice(rep[i].tuples, func(a, b int) bool { return lessTuple(rep[i].tuples[a], rep[i].tuples[b]) })
		sort.Slice(rep[i].sources, func(a, b int) bool { return lessSource(rep[i].sources[a], rep[i].sources[b]) })
		if t.top > 0 && len(rep[i].tuples) > t.top {
			rep[i].tuples = rep[i].tuples[:t.top]
		}
		if t.top > 0 && len(rep[i].sources) > t.top {
			rep[i].sources = rep[i].sources[:t.top]
		}
	}
	t.prevTuples, t.prevSources, t.prevCounts = s.tuples, s.sources, s.counters
	return rep
}

func (t *synTracker) sums(s synSnapshot) (tuples, sources []uint64) {
	tuples = make([]uint64, len(t.attached))
	sources = make([]uint64, len(t.attached))
	for k, v := range s.tuples {
		if int(k.Slot) < len(tuples) {
			tuples[k.Slot] += v
		}
	}
	for k, v := range s.sources {
		if int(k.Slot) < len(sources) {
			sources[k.Slot] += v
		}
	}
	return tuples, sources
}

func (t *synTracker) summary(s synSnapshot, elapsed time.Duration) output.SYNSummary {
	sum := output.SYNSummary{Type: "summary", DurationSeconds: elapsed.Seconds(), Tuples: len(s.tuples), Sources: len(s.sources)}
	tupleSums, sourceSums := t.sums(s)
	for i := range t.attached {
		c := s.counters[i]
		sum.SYN += c.SynNoAck
		sum.SYNAck += c.SynAck
		sum.Dropped += c.Dropped
		sum.Untracked += sat(c.SynNoAck, tupleSums[i])
		sum.UntrackedSources += sat(c.SynNoAck, sourceSums[i])
	}
	return sum
}

func sat(a, b uint64) uint64 {
	if a > b {
		return a - b
	}
	return 0
}

func lessTuple(a, b countedTuple) bool {
	if a.count != b.count {
		return a.count > b.count
	}
	if c := a.Src.Compare(b.Src); c != 0 {
		return c < 0
	}
	if a.Sport != b.Sport {
		return a.Sport < b.Sport
	}
	if c := a.Dst.Compare(b.Dst); c != 0 {
		return c < 0
	}
	return a.Dport < b.Dport
}

func lessSource(a, b countedSource) bool {
	if a.count != b.count {
		return a.count > b.count
	}
	return a.Addr.Compare(b.Addr) < 0
}

func (r synReport) emitJSON(out *output.JSONLines, now time.Time) error {
	ts := timestamp(now)
	for _, ifr := range r {
		if err := out.Emit(output.SYNIntervalRecord{Type: "syn_interval", Time: ts, Interface: ifr.name,
			SYN: ifr.syn, SYNAck: ifr.synAck, Dropped: ifr.dropped, Untracked: ifr.untracked}); err != nil {
			return err
		}
		for _, tp := range ifr.tuples {
			if err := out.Emit(output.SYNRecord{Type: "syn", Time: ts, Interface: ifr.name,
				Src: tp.Src.String(), Sport: tp.Sport, Dst: tp.Dst.String(), Dport: tp.Dport, Count: tp.count}); err != nil {
				return err
			}
		}
		for _, src := range ifr.sources {
			if err := out.Emit(output.SYNSourceRecord{Type: "syn_source", Time: ts, Interface: ifr.name,
				Src: src.Addr.String(), Count: src.count}); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r synReport) writeText(w interface{ Write([]byte) (int, error) }, now time.Time) {
	for _, ifr := range r {
		fmt.Fprintf(w, "%s %s: %d SYN, %d SYN-ACK, %d dropped, %d untracked\n",
			now.Format("15:04:05.000"), ifr.name, ifr.syn, ifr.synAck, ifr.dropped, ifr.untracked)
		if len(ifr.tuples) > 0 {
			t := output.NewTable(w, "SRC", "SPORT", "DST", "DPORT", "SYNS")
			for _, tp := range ifr.tuples {
				t.Row(tp.Src, tp.Sport, tp.Dst, tp.Dport, tp.count)
			}
			t.Flush()
		}
		if len(ifr.sources) > 0 {
			t := output.NewTable(w, "SOURCE", "SYNS")
			for _, src := range ifr.sources {
				t.Row(src.Addr, src.count)
			}
			t.Flush()
		}
	}
}

func writeSynSummary(w interface{ Write([]byte) (int, error) }, s output.SYNSummary) {
	fmt.Fprintf(w, "\nSummary: %.1fs since start: %d SYN, %d SYN-ACK, %d dropped; %s and %s tracked at exit; %s untracked (tuple evicted from a full map), %d by source\n",
		s.DurationSeconds, s.SYN, s.SYNAck, s.Dropped, output.Plural(uint64(s.Tuples), "tuple"), output.Plural(uint64(s.Sources), "source"),
		output.Plural(s.Untracked, "SYN"), s.UntrackedSources)
}
