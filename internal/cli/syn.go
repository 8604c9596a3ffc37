package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/tcplens/tcplens/internal/conn"
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
	c.registerDirection(fs, "in")
	var pf packetFilterFlags
	pf.register(fs, false)
	var maxTuples, maxSources, threshold uint32
	var top int
	var dropPorts []uint
	fs.Uint32Var(&maxTuples, "max-tuples", 16384, "track at most `N` 4-tuples per interval; SYNs that find the table full are counted as untracked")
	fs.Uint32Var(&maxSources, "max-sources", 16384, "track at most `N` source addresses exactly per interval")
	fs.Uint32Var(&threshold, "source-threshold", 1, "give a source an exact entry once it sent `N` SYNs in the interval (and stands out of a flood)")
	fs.IntVar(&top, "top", 10, "show the `N` busiest tuples and sources per interval (0: all)")
	fs.UintSliceVar(&dropPorts, "drop-syn-port", nil, "drop SYNs (without ACK) to `PORT` and count them (repeatable)")
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return err
	}
	for _, l := range []struct {
		flag string
		v    uint32
		max  uint32
	}{{"max-tuples", maxTuples, probe.MaxSYNTableEntries}, {"max-sources", maxSources, probe.MaxSYNTableEntries},
		{"source-threshold", threshold, maxSourceThreshold}} {
		if l.v < 1 || l.v > l.max {
			return usagef("--%s %d: must be 1 to %d", l.flag, l.v, l.max)
		}
	}
	if top < 0 {
		return usagef("--top must not be negative, not %d", top)
	}
	ports, err := parsePorts("drop-syn-port", dropPorts)
	if err != nil {
		return err
	}
	filter, err := pf.program(nil)
	if err != nil {
		return err
	}

	pp, ctx, err := startPacketPath(ctx, env, "syn", &c, probe.PacketConfig{
		TrackSYN: true, MaxTuples: maxTuples, MaxSources: maxSources, SourceThreshold: threshold, DropSYNPorts: ports, Filter: filter,
	})
	if err != nil {
		return err
	}
	defer pp.Close()
	if c.format == output.Text {
		fmt.Fprintf(env.Stderr, "tcplens syn: watching %s; Ctrl-C to stop\n", describeAttachments(pp.Attachments()))
	}

	start := time.Now()
	tr := newSynTracker(counterViews(pp.Direction(), pp.Attachments()), top)
	out := output.NewJSONLines(env.Stdout)
	emit := func(rep synReport, now time.Time) error {
		if c.format == output.JSON {
			if err := rep.emitJSON(out, now); err != nil {
				return err
			}
			return out.Flush()
		}
		rep.writeText(env.Stdout, now)
		return nil
	}
	runErr := runPeriodic(ctx, &c, func(now time.Time) error {
		counters, tables, err := readSynInterval(pp, tr.views)
		if err != nil {
			return err
		}
		return emit(tr.interval(counters, tables), now)
	})

	// Detach first: then no SYN arrives between the last counters and the
	// last tables, and the summary adds up exactly.
	detachErr := pp.Detach()
	counters, tables, err := readSynInterval(pp, tr.views)
	if err != nil {
		return err
	}
	if rep := tr.interval(counters, tables); runErr == nil && rep.any() {
		// The time since the last report, so that the reports add up to
		// the summary.
		runErr = emit(rep, time.Now())
	}
	sum := tr.summary(counters, time.Since(start))
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
	if err := packetRunError(ctx, runErr); err != nil {
		return err
	}
	return detachErr
}

// maxSourceThreshold: a higher threshold would only ever leave the
// source table empty (the sketch's cells are 32 bits, a busy source
// sends far fewer SYNs per interval).
const maxSourceThreshold = 1 << 20

// readSynInterval swaps the SYN tables and reads the counters after the
// swap. SYNs that arrive between the two are in the counters of this
// interval and in the tables of the next; over the whole run the counts
// agree exactly.
func readSynInterval(pp *probe.PacketPath, views []counterView) ([]probe.FlagCounters, probe.SYNTables, error) {
	tables, err := pp.SwapSYN()
	if err != nil {
		return nil, tables, err
	}
	counters, err := readViewCounters(pp, views)
	return counters, tables, err
}

// synTracker turns the kernel's cumulative counters and per-interval
// tables into reports. The tables come back empty at every swap, so a
// tuple's count in a table is its count in the interval.
type synTracker struct {
	views      []counterView
	top        int
	prevCounts []probe.FlagCounters
	// over all intervals: table entries and the SYNs they counted
	tuples, sources int
	attributed      uint64
}

func newSynTracker(views []counterView, top int) *synTracker {
	return &synTracker{
		views:      views,
		top:        top,
		prevCounts: make([]probe.FlagCounters, len(views)),
	}
}

// synIfaceReport is one interface's interval in one direction. Tuples and
// sources are only ever in the "in" direction: SYNs sent are counted, not
// tracked.
type synIfaceReport struct {
	name, dir                                         string
	syn, synAck, dropped, untracked, untrackedSources uint64
	tuples                                            []conn.SYNTuple
	sources                                           []conn.SYNSource
}

type synReport []synIfaceReport

// any says whether the report holds anything at all.
func (r synReport) any() bool {
	for _, ifr := range r {
		if ifr.syn+ifr.synAck+ifr.dropped > 0 || len(ifr.tuples)+len(ifr.sources) > 0 {
			return true
		}
	}
	return false
}

func (t *synTracker) interval(counters []probe.FlagCounters, tables probe.SYNTables) synReport {
	rep := make(synReport, len(t.views))
	for i, v := range t.views {
		d := probe.SubCounters(counters[i], t.prevCounts[i])
		rep[i] = synIfaceReport{name: v.iface, dir: v.dir.String(), syn: d.SynNoAck, synAck: d.SynAck, dropped: d.Dropped,
			untracked: d.SynUntracked, untrackedSources: d.SynUntrackedSource}
	}
	slotIndex := map[uint32]int{}
	for i, v := range t.views {
		if v.dir == probe.DirIn {
			slotIndex[v.slot] = i
		}
	}
	for k, v := range tables.Tuples {
		t.tuples++
		t.attributed += v
		if i, ok := slotIndex[k.Slot]; ok {
			rep[i].tuples = append(rep[i].tuples, conn.SYNTuple{Src: k.Src, Dst: k.Dst, Sport: k.Sport, Dport: k.Dport, SYNs: v})
		}
	}
	for k, v := range tables.Sources {
		t.sources++
		if i, ok := slotIndex[k.Slot]; ok {
			rep[i].sources = append(rep[i].sources, conn.SYNSource{Addr: k.Addr, SYNs: v.SYNs, Earlier: v.Earlier})
		}
	}
	for i := range rep {
		rep[i].tuples = conn.RankSYNTuples(rep[i].tuples, t.top)
		rep[i].sources = conn.RankSYNSources(rep[i].sources, t.top)
	}
	t.prevCounts = counters
	return rep
}

func (t *synTracker) summary(counters []probe.FlagCounters, elapsed time.Duration) output.SYNSummary {
	sum := output.SYNSummary{Type: "summary", DurationSeconds: elapsed.Seconds(),
		Tuples: t.tuples, Sources: t.sources, Attributed: t.attributed}
	for i, c := range counters {
		if t.views[i].dir == probe.DirOut {
			if sum.Out == nil {
				sum.Out = &output.SYNOut{}
			}
			sum.Out.SYN += c.SynNoAck
			sum.Out.SYNAck += c.SynAck
			continue
		}
		sum.SYN += c.SynNoAck
		sum.SYNAck += c.SynAck
		sum.Dropped += c.Dropped
		sum.Untracked += c.SynUntracked
		sum.UntrackedSources += c.SynUntrackedSource
	}
	return sum
}

func (r synReport) emitJSON(out *output.JSONLines, now time.Time) error {
	ts := timestamp(now)
	for _, ifr := range r {
		if err := out.Emit(output.SYNIntervalRecord{Type: "syn_interval", Time: ts, Interface: ifr.name, Direction: ifr.dir,
			SYN: ifr.syn, SYNAck: ifr.synAck, Dropped: ifr.dropped, Untracked: ifr.untracked,
			UntrackedSources: ifr.untrackedSources}); err != nil {
			return err
		}
		for _, tp := range ifr.tuples {
			if err := out.Emit(output.SYNRecord{Type: "syn", Time: ts, Interface: ifr.name,
				Src: tp.Src.String(), Sport: tp.Sport, Dst: tp.Dst.String(), Dport: tp.Dport, SYN: tp.SYNs}); err != nil {
				return err
			}
		}
		for _, src := range ifr.sources {
			if err := out.Emit(output.SYNSourceRecord{Type: "syn_source", Time: ts, Interface: ifr.name,
				Src: src.Addr.String(), SYN: src.SYNs, EarlierEstimate: src.Earlier}); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r synReport) writeText(w interface{ Write([]byte) (int, error) }, now time.Time) {
	for _, ifr := range r {
		if ifr.dir == "out" {
			fmt.Fprintf(w, "%s %s out: %d SYN, %d SYN-ACK sent\n", now.Format("15:04:05.000"), ifr.name, ifr.syn, ifr.synAck)
			continue
		}
		fmt.Fprintf(w, "%s %s in: %d SYN, %d SYN-ACK, %d dropped, %d untracked, %d untracked by source\n",
			now.Format("15:04:05.000"), ifr.name, ifr.syn, ifr.synAck, ifr.dropped, ifr.untracked, ifr.untrackedSources)
		if len(ifr.tuples) > 0 {
			t := output.NewTable(w, "SRC", "SPORT", "DST", "DPORT", "SYNS")
			for _, tp := range ifr.tuples {
				t.Row(tp.Src, tp.Sport, tp.Dst, tp.Dport, tp.SYNs)
			}
			t.Flush()
		}
		if len(ifr.sources) > 0 {
			t := output.NewTable(w, "SOURCE", "SYNS", "EARLIER")
			for _, src := range ifr.sources {
				t.Row(src.Addr, src.SYNs, earlierText(src.Earlier))
			}
			t.Flush()
		}
	}
}

// earlierText shows the sketch's estimate of a source's SYNs before it got
// its entry ("-" when there were none).
func earlierText(n uint64) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprintf("<=%d", n)
}

func writeSynSummary(w interface{ Write([]byte) (int, error) }, s output.SYNSummary) {
	fmt.Fprintf(w, "\nSummary: %.1fs since start: received %d SYN, %d SYN-ACK, %d dropped; %s counted on %s (per interval), %d untracked (the interval's tuple table was full); %s with exact entries, %d SYNs untracked by source\n",
		s.DurationSeconds, s.SYN, s.SYNAck, s.Dropped, output.Plural(s.Attributed, "SYN"), output.Plural(uint64(s.Tuples), "tuple"),
		s.Untracked, output.Plural(uint64(s.Sources), "source"), s.UntrackedSources)
	if s.Out != nil {
		fmt.Fprintf(w, "Sent: %d SYN, %d SYN-ACK\n", s.Out.SYN, s.Out.SYNAck)
	}
}
