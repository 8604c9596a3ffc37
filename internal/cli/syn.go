package cli

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/tcplens/tcplens/internal/conn"
	"github.com/tcplens/tcplens/internal/output"
	"github.com/tcplens/tcplens/internal/probe"
)

func init() {
	register("syn", "who is trying to connect to whom: SYNs per 4-tuple, per source, per TCP-options signature", runSyn)
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
	var by []string
	var maxSigs uint32
	fs.StringSliceVar(&by, "by", []string{"tuple", "source"}, "count SYNs by these `VIEWS`: tuple (4-tuple), source (source address), signature (TCP options, LAYOUT:MSS:WSCALE as p0f writes them: a flood's tool shows as one dominant signature); comma-separated")
	fs.Uint32Var(&maxSigs, "max-signatures", 4096, "with --by signature: count at most `N` distinct signatures per interval; SYNs with a signature that finds the table full are counted as untracked")
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
	views, err := parseSynViews(by)
	if err != nil {
		return err
	}
	if maxSigs < 1 || maxSigs > probe.MaxSYNTableEntries {
		return usagef("--max-signatures %d: must be 1 to %d", maxSigs, probe.MaxSYNTableEntries)
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
		TrackSYN: views.tuple || views.source, MaxTuples: maxTuples, MaxSources: maxSources, SourceThreshold: threshold,
		SYNSignatures: views.signature, MaxSignatures: maxSigs, DropSYNPorts: ports, Filter: filter,
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
	tr.by = views
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
		counters, tables, sigUntracked, err := readSynInterval(pp, tr.views, views.signature)
		if err != nil {
			return err
		}
		return emit(tr.interval(counters, tables, sigUntracked), now)
	})

	// Detach first: then no SYN arrives between the last counters and the
	// last tables, and the summary adds up exactly.
	detachErr := pp.Detach()
	counters, tables, sigUntracked, err := readSynInterval(pp, tr.views, views.signature)
	if err != nil {
		return err
	}
	if rep := tr.interval(counters, tables, sigUntracked); runErr == nil && rep.any() {
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
		writeSynSummary(env.Stdout, sum, views, top)
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

// synViews is what `syn --by` asked for.
type synViews struct{ tuple, source, signature bool }

// synViewNames are the values --by takes, in the order help lists them.
var synViewNames = []string{"tuple", "source", "signature"}

func parseSynViews(by []string) (synViews, error) {
	var v synViews
	if len(by) == 0 {
		return v, usagef("--by: name at least one of %s", strings.Join(synViewNames, ", "))
	}
	for _, name := range by {
		switch strings.TrimSpace(name) {
		case "tuple":
			v.tuple = true
		case "source":
			v.source = true
		case "signature":
			v.signature = true
		default:
			return v, usagef("--by %s: one or more of %s, comma-separated", name, strings.Join(synViewNames, ", "))
		}
	}
	return v, nil
}

// tracked says whether the tuple and source tables are filled (their
// untracked counts mean something).
func (v synViews) tracked() bool { return v.tuple || v.source }

// readSynInterval swaps the SYN tables and reads the counters after the
// swap, and with signatures the untracked-signature counts of the "in"
// views (cumulative, nil without). SYNs that arrive between the two are in
// the counters of this interval and in the tables of the next; over the
// whole run the counts agree exactly.
func readSynInterval(pp *probe.PacketPath, views []counterView, sigs bool) ([]probe.FlagCounters, probe.SYNTables, []uint64, error) {
	tables, err := pp.SwapSYN()
	if err != nil {
		return nil, tables, nil, err
	}
	counters, err := readViewCounters(pp, views)
	if err != nil || !sigs {
		return counters, tables, nil, err
	}
	untracked := make([]uint64, len(views))
	for i, v := range views {
		if v.dir != probe.DirIn {
			continue
		}
		if untracked[i], err = pp.SYNSignaturesUntracked(v.slot); err != nil {
			return nil, tables, nil, err
		}
	}
	return counters, tables, untracked, nil
}

// synTracker turns the kernel's cumulative counters and per-interval
// tables into reports. The tables come back empty at every swap, so a
// tuple's count in a table is its count in the interval.
type synTracker struct {
	views      []counterView
	top        int
	by         synViews
	prevCounts []probe.FlagCounters
	// over all intervals: table entries and the SYNs they counted
	tuples, sources int
	attributed      uint64
	// --by signature: the untracked counts last read (cumulative, per
	// view), and SYNs per signature over all intervals and interfaces
	prevSigUntracked []uint64
	sigTotals        map[probe.SYNSignature]uint64
}

func newSynTracker(views []counterView, top int) *synTracker {
	return &synTracker{
		views:            views,
		top:              top,
		by:               synViews{tuple: true, source: true},
		prevCounts:       make([]probe.FlagCounters, len(views)),
		prevSigUntracked: make([]uint64, len(views)),
		sigTotals:        map[probe.SYNSignature]uint64{},
	}
}

// sigCount is one signature's SYNs in an interval on one interface, and
// its share of the SYNs the signature view saw there.
type sigCount struct {
	sig   probe.SYNSignature
	syns  uint64
	share float64
}

// rankSigs orders signatures busiest first, ties by their text, and keeps
// the first top (0: all).
func rankSigs(ss []sigCount, top int) []sigCount {
	sort.Slice(ss, func(i, j int) bool {
		if ss[i].syns != ss[j].syns {
			return ss[i].syns > ss[j].syns
		}
		return ss[i].sig.String() < ss[j].sig.String()
	})
	if top > 0 && len(ss) > top {
		ss = ss[:top]
	}
	return ss
}

// synIfaceReport is one interface's interval in one direction. Tuples and
// sources are only ever in the "in" direction: SYNs sent are counted, not
// tracked.
type synIfaceReport struct {
	name, dir                                         string
	by                                                synViews
	syn, synAck, dropped, untracked, untrackedSources uint64
	tuples                                            []conn.SYNTuple
	sources                                           []conn.SYNSource
	sigs                                              []sigCount
	untrackedSigs                                     uint64
}

type synReport []synIfaceReport

// any says whether the report holds anything at all.
func (r synReport) any() bool {
	for _, ifr := range r {
		if ifr.syn+ifr.synAck+ifr.dropped+ifr.untrackedSigs > 0 || len(ifr.tuples)+len(ifr.sources)+len(ifr.sigs) > 0 {
			return true
		}
	}
	return false
}

// interval makes one interval's report. sigUntracked is the cumulative
// untracked-signature count per view (nil without --by signature).
func (t *synTracker) interval(counters []probe.FlagCounters, tables probe.SYNTables, sigUntracked []uint64) synReport {
	rep := make(synReport, len(t.views))
	for i, v := range t.views {
		d := probe.SubCounters(counters[i], t.prevCounts[i])
		rep[i] = synIfaceReport{name: v.iface, dir: v.dir.String(), by: t.by, syn: d.SynNoAck, synAck: d.SynAck, dropped: d.Dropped,
			untracked: d.SynUntracked, untrackedSources: d.SynUntrackedSource}
		if sigUntracked != nil {
			rep[i].untrackedSigs = sigUntracked[i] - t.prevSigUntracked[i]
		}
	}
	if sigUntracked != nil {
		t.prevSigUntracked = slices.Clone(sigUntracked)
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
	for k, v := range tables.Signatures {
		t.sigTotals[k.Sig] += v
		if i, ok := slotIndex[k.Slot]; ok && v > 0 {
			rep[i].sigs = append(rep[i].sigs, sigCount{sig: k.Sig, syns: v})
		}
	}
	for i := range rep {
		rep[i].tuples = conn.RankSYNTuples(rep[i].tuples, t.top)
		rep[i].sources = conn.RankSYNSources(rep[i].sources, t.top)
		if !t.by.tuple {
			rep[i].tuples = nil
		}
		if !t.by.source {
			rep[i].sources = nil
		}
		// Shares of what the view saw on the interface (the table and the
		// untracked count), which adds up to 1 whatever the top cut.
		all := rep[i].untrackedSigs
		for _, s := range rep[i].sigs {
			all += s.syns
		}
		for j := range rep[i].sigs {
			rep[i].sigs[j].share = float64(rep[i].sigs[j].syns) / float64(all)
		}
		rep[i].sigs = rankSigs(rep[i].sigs, t.top)
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
	if t.by.signature {
		bs := &output.SYNSignatureTotals{Signatures: []output.SYNSignatureCount{}}
		for _, u := range t.prevSigUntracked {
			bs.Untracked += u
		}
		ranked := make([]sigCount, 0, len(t.sigTotals))
		for sig, n := range t.sigTotals {
			ranked = append(ranked, sigCount{sig: sig, syns: n})
		}
		for _, s := range rankSigs(ranked, 0) {
			bs.Signatures = append(bs.Signatures, output.SYNSignatureCount{Signature: s.sig.String(), SYN: s.syns})
		}
		sum.BySignature = bs
	}
	return sum
}

func (r synReport) emitJSON(out *output.JSONLines, now time.Time) error {
	ts := timestamp(now)
	for _, ifr := range r {
		rec := output.SYNIntervalRecord{Type: "syn_interval", Time: ts, Interface: ifr.name, Direction: ifr.dir,
			SYN: ifr.syn, SYNAck: ifr.synAck, Dropped: ifr.dropped, Untracked: ifr.untracked,
			UntrackedSources: ifr.untrackedSources}
		if ifr.by.signature && ifr.dir == "in" {
			rec.UntrackedSignatures = &ifr.untrackedSigs
		}
		if err := out.Emit(rec); err != nil {
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
		for _, s := range ifr.sigs {
			if err := out.Emit(output.SYNSignatureRecord{Type: "syn_signature", Time: ts, Interface: ifr.name,
				Signature: s.sig.String(), SYN: s.syns, Share: s.share}); err != nil {
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
		fmt.Fprintf(w, "%s %s in: %d SYN, %d SYN-ACK, %d dropped", now.Format("15:04:05.000"), ifr.name, ifr.syn, ifr.synAck, ifr.dropped)
		if ifr.by.tracked() {
			fmt.Fprintf(w, ", %d untracked, %d untracked by source", ifr.untracked, ifr.untrackedSources)
		}
		if ifr.by.signature {
			fmt.Fprintf(w, ", %d untracked by signature", ifr.untrackedSigs)
		}
		fmt.Fprintln(w)
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
		if len(ifr.sigs) > 0 {
			t := output.NewTable(w, "SIGNATURE", "SYNS", "SHARE")
			for _, s := range ifr.sigs {
				t.Row(s.sig, s.syns, fmt.Sprintf("%.1f%%", 100*s.share))
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

// writeSynSummary writes the summary; top bounds the signatures listed
// (0: all; JSON lists all).
func writeSynSummary(w interface{ Write([]byte) (int, error) }, s output.SYNSummary, by synViews, top int) {
	fmt.Fprintf(w, "\nSummary: %.1fs since start: received %d SYN, %d SYN-ACK, %d dropped", s.DurationSeconds, s.SYN, s.SYNAck, s.Dropped)
	if by.tracked() {
		fmt.Fprintf(w, "; %s counted on %s (per interval), %d untracked (the interval's tuple table was full); %s with exact entries, %d SYNs untracked by source",
			output.Plural(s.Attributed, "SYN"), output.Plural(uint64(s.Tuples), "tuple"),
			s.Untracked, output.Plural(uint64(s.Sources), "source"), s.UntrackedSources)
	}
	fmt.Fprintln(w)
	if bs := s.BySignature; bs != nil {
		var counted uint64
		for _, c := range bs.Signatures {
			counted += c.SYN
		}
		fmt.Fprintf(w, "By signature: %s over %s, %d untracked (the interval's signature table was full)\n",
			output.Plural(counted, "SYN"), output.Plural(uint64(len(bs.Signatures)), "signature"), bs.Untracked)
		list := bs.Signatures
		if top > 0 && len(list) > top {
			list = list[:top]
		}
		if len(list) > 0 {
			t := output.NewTable(w, "SIGNATURE", "SYNS", "SHARE")
			for _, c := range list {
				t.Row(c.Signature, c.SYN, fmt.Sprintf("%.1f%%", 100*float64(c.SYN)/float64(counted+bs.Untracked)))
			}
			t.Flush()
		}
	}
	if s.Out != nil {
		fmt.Fprintf(w, "Sent: %d SYN, %d SYN-ACK\n", s.Out.SYN, s.Out.SYNAck)
	}
}
