package cli

import (
	"bytes"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/tcplens/tcplens/internal/conn"
	"github.com/tcplens/tcplens/internal/output"
	"github.com/tcplens/tcplens/internal/probe"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

var (
	fixedTime = time.Date(2026, 11, 25, 21, 0, 0, 123456789, time.UTC)
	twoIfaces = []probe.Attachment{
		{Interface: probe.Interface{Name: "veth0", Index: 7}, Hook: probe.HookTC, Mode: "tcx", Slot: 0},
		{Interface: probe.Interface{Name: "eth1", Index: 9}, Hook: probe.HookXDP, Mode: "native", Slot: 1},
	}
	someCounts = []probe.FlagCounters{
		{Packets: 1000, TcpPackets: 900, Fin: 10, Syn: 22, Rst: 3, Psh: 400, Ack: 880, Urg: 1, Ece: 2, Cwr: 2,
			SynFin: 1, SynRst: 1, NullFlags: 4, Xmas: 1, Malformed: 5, Dropped: 7, SynNoAck: 15, SynAck: 7},
		{Packets: 12, TcpPackets: 12, Syn: 2, Ack: 10, SynNoAck: 2},
	}
)

func TestFlagsOutputGolden(t *testing.T) {
	for _, format := range []output.Format{output.Text, output.JSON} {
		var out bytes.Buffer
		r := newFlagsReporter(Env{Stdout: &out, Stderr: &out}, format, counterViews(probe.DirIn, twoIfaces))
		r.since = fixedTime.Add(-time.Second)
		if err := r.report("interval", fixedTime, someCounts); err != nil {
			t.Fatal(err)
		}
		if err := r.summary(fixedTime, 3*time.Second, someCounts); err != nil {
			t.Fatal(err)
		}
		golden(t, "flags."+string(format)+".golden", out.Bytes())
	}
}

func tuple(slot uint32, src string, sport uint16, dst string, dport uint16) probe.SYNTuple {
	return probe.SYNTuple{Slot: slot, Src: netip.MustParseAddr(src), Sport: sport, Dst: netip.MustParseAddr(dst), Dport: dport}
}

func source(slot uint32, addr string) probe.SYNSource {
	return probe.SYNSource{Slot: slot, Addr: netip.MustParseAddr(addr)}
}

func tables(tuples map[probe.SYNTuple]uint64, sources map[probe.SYNSource]probe.SourceCount) probe.SYNTables {
	return probe.SYNTables{Tuples: tuples, Sources: sources}
}

// The tables come back empty at every swap: an interval reports what its
// tables hold, the counters' growth, and the kernel's untracked counts; the
// summary adds the intervals up.
func TestSynTrackerIntervalsAndUntracked(t *testing.T) {
	attached := twoIfaces[:1]
	tr := newSynTracker(counterViews(probe.DirIn, attached), 2)
	a := tuple(0, "10.0.0.1", 40000, "10.0.0.2", 80)
	b := tuple(0, "10.0.0.1", 40001, "10.0.0.2", 80)
	c := tuple(0, "fd00::1", 40002, "fd00::2", 443)

	// Interval 1: a=3, b=1; 4 SYNs counted, all tracked.
	rep := tr.interval([]probe.FlagCounters{{SynNoAck: 4, SynAck: 1}},
		tables(map[probe.SYNTuple]uint64{a: 3, b: 1}, map[probe.SYNSource]probe.SourceCount{source(0, "10.0.0.1"): {SYNs: 4}}), nil)
	if got := rep[0]; got.syn != 4 || got.synAck != 1 || got.untracked != 0 || len(got.tuples) != 2 ||
		!sameTuple(got.tuples[0], a) || got.tuples[0].SYNs != 3 || got.tuples[1].SYNs != 1 {
		t.Fatalf("interval 1: %+v", got)
	}

	// Interval 2: 6 more SYNs; the table filled after a=2 and c=2, so the
	// kernel counted 2 untracked; one source stood out after 1 SYN.
	rep = tr.interval([]probe.FlagCounters{{SynNoAck: 10, SynAck: 1, SynUntracked: 2, SynUntrackedSource: 1}},
		tables(map[probe.SYNTuple]uint64{a: 2, c: 2, b: 0},
			map[probe.SYNSource]probe.SourceCount{source(0, "10.0.0.1"): {SYNs: 3, Earlier: 1}, source(0, "fd00::1"): {SYNs: 2}}), nil)
	got := rep[0]
	if got.syn != 6 || got.synAck != 0 || got.untracked != 2 || got.untrackedSources != 1 {
		t.Errorf("interval 2 totals: syn %d syn_ack %d untracked %d by source %d; want 6 0 2 1",
			got.syn, got.synAck, got.untracked, got.untrackedSources)
	}
	// --top 2 keeps the two busiest; equal counts sort by address.
	if len(got.tuples) != 2 || !sameTuple(got.tuples[0], a) || !sameTuple(got.tuples[1], c) {
		t.Errorf("interval 2 tuples: %+v", got.tuples)
	}
	if len(got.sources) != 2 || got.sources[0].SYNs != 3 || got.sources[0].Earlier != 1 {
		t.Errorf("interval 2 sources: %+v", got.sources)
	}

	sum := tr.summary([]probe.FlagCounters{{SynNoAck: 10, SynAck: 2, Dropped: 1, SynUntracked: 2, SynUntrackedSource: 1}}, time.Second)
	want := output.SYNSummary{Type: "summary", DurationSeconds: 1, SYN: 10, SYNAck: 2, Dropped: 1,
		Tuples: 5, Sources: 3, Attributed: 8, Untracked: 2, UntrackedSources: 1}
	if sum != want {
		t.Errorf("summary %+v, want %+v", sum, want)
	}
	if sum.Attributed+sum.Untracked != sum.SYN {
		t.Errorf("attributed %d + untracked %d != syn %d", sum.Attributed, sum.Untracked, sum.SYN)
	}
}

// sameTuple says whether a ranked tuple is the kernel's tuple k.
func sameTuple(t conn.SYNTuple, k probe.SYNTuple) bool {
	return t.Src == k.Src && t.Dst == k.Dst && t.Sport == k.Sport && t.Dport == k.Dport
}

// The last, partial interval is printed only when it holds something.
func TestSynReportAny(t *testing.T) {
	tr := newSynTracker(counterViews(probe.DirIn, twoIfaces[:1]), 0)
	rep := tr.interval([]probe.FlagCounters{{}}, tables(nil, nil), nil)
	if rep.any() {
		t.Errorf("empty interval reports any: %+v", rep)
	}
	rep = tr.interval([]probe.FlagCounters{{SynNoAck: 1, SynUntracked: 1, SynUntrackedSource: 1}}, tables(nil, nil), nil)
	if !rep.any() || rep[0].untracked != 1 {
		t.Errorf("one untracked SYN: %+v", rep)
	}
}

func TestSynJSONRecords(t *testing.T) {
	var out bytes.Buffer
	j := output.NewJSONLines(&out)
	rep := synReport{{
		name: "veth0", dir: "in", by: synViews{tuple: true, source: true}, syn: 7, synAck: 1, dropped: 1, untracked: 4, untrackedSources: 4,
		tuples: []conn.SYNTuple{
			{Src: netip.MustParseAddr("fd00:200::1"), Sport: 40000, Dst: netip.MustParseAddr("fd00:200::2"), Dport: 8080, SYNs: 2},
			{Src: netip.MustParseAddr("10.200.0.1"), Sport: 5, Dst: netip.MustParseAddr("10.200.0.2"), Dport: 22, SYNs: 1}},
		sources: []conn.SYNSource{{Addr: netip.MustParseAddr("fd00:200::1"), SYNs: 2}, {Addr: netip.MustParseAddr("10.200.0.1"), SYNs: 1, Earlier: 3}},
	}, {name: "veth0", dir: "out", syn: 2, synAck: 5}}
	if err := rep.emitJSON(j, fixedTime); err != nil {
		t.Fatal(err)
	}
	j.Flush()
	golden(t, "syn.json.golden", out.Bytes())
	out.Reset()
	rep.writeText(&out, fixedTime)
	writeSynSummary(&out, output.SYNSummary{Type: "summary", DurationSeconds: 2, SYN: 7, SYNAck: 1, Tuples: 2, Sources: 2, Attributed: 3, Untracked: 4, UntrackedSources: 4,
		Out: &output.SYNOut{SYN: 2, SYNAck: 5}}, synViews{tuple: true, source: true}, 0)
	golden(t, "syn.text.golden", out.Bytes())
}

// With --direction both every interface has an "in" and an "out" row, the
// out row labelled with egress's TC mode (XDP has no egress).
func TestFlagsOutputBothDirectionsGolden(t *testing.T) {
	both := []probe.Attachment{
		{Interface: probe.Interface{Name: "veth0", Index: 7}, Hook: probe.HookTC, Mode: "tcx", EgressMode: "tcx", Slot: 0},
		{Interface: probe.Interface{Name: "eth1", Index: 9}, Hook: probe.HookXDP, Mode: "native", EgressMode: "netlink", Slot: 1},
	}
	counts := []probe.FlagCounters{someCounts[0], {Packets: 30, TcpPackets: 30, Syn: 7, Ack: 30, SynAck: 7}, someCounts[1], {}}
	for _, format := range []output.Format{output.Text, output.JSON} {
		var out bytes.Buffer
		r := newFlagsReporter(Env{Stdout: &out, Stderr: &out}, format, counterViews(probe.DirBoth, both))
		r.since = fixedTime.Add(-time.Second)
		if err := r.report("interval", fixedTime, counts); err != nil {
			t.Fatal(err)
		}
		golden(t, "flags-both."+string(format)+".golden", out.Bytes())
	}
}

func mustSig(t *testing.T, text string) probe.SYNSignature {
	t.Helper()
	s, err := probe.ParseSYNSignature(text)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// --by signature alone: per interval the signatures ranked with their
// share of the view's SYNs (untracked included), the untracked count as a
// delta of the kernel's cumulative one; the summary adds signatures up
// over intervals, and with the untracked count they make the SYNs.
func TestSynTrackerSignatures(t *testing.T) {
	tr := newSynTracker(counterViews(probe.DirIn, twoIfaces[:1]), 2)
	tr.by = synViews{signature: true}
	bare, linux, win := mustSig(t, "-:-:-"), mustSig(t, "MSTNW:1460:7"), mustSig(t, "MNWNNS:1460:8")
	sigs := func(m map[probe.SYNSignature]uint64) probe.SYNTables {
		out := probe.SYNTables{Signatures: map[probe.SYNSig]uint64{}}
		for s, n := range m {
			out.Signatures[probe.SYNSig{Slot: 0, Sig: s}] = n
		}
		return out
	}
	rep := tr.interval([]probe.FlagCounters{{SynNoAck: 10}}, sigs(map[probe.SYNSignature]uint64{bare: 6, linux: 3, win: 1}), []uint64{0})
	got := rep[0]
	if len(got.sigs) != 2 || got.sigs[0].sig != bare || got.sigs[0].syns != 6 || got.sigs[0].share != 0.6 ||
		got.sigs[1].sig != linux || got.sigs[1].share != 0.3 || got.untrackedSigs != 0 || got.tuples != nil || got.sources != nil {
		t.Fatalf("interval 1: %+v", got)
	}
	// Interval 2: the table filled; the kernel's untracked count went 0 -> 4.
	rep = tr.interval([]probe.FlagCounters{{SynNoAck: 18}}, sigs(map[probe.SYNSignature]uint64{bare: 4}), []uint64{4})
	if got := rep[0]; got.untrackedSigs != 4 || len(got.sigs) != 1 || got.sigs[0].share != 0.5 || got.syn != 8 {
		t.Fatalf("interval 2: %+v", got)
	}
	sum := tr.summary([]probe.FlagCounters{{SynNoAck: 18}}, time.Second)
	want := &output.SYNSignatureTotals{Untracked: 4, Signatures: []output.SYNSignatureCount{
		{Signature: "-:-:-", SYN: 10}, {Signature: "MSTNW:1460:7", SYN: 3}, {Signature: "MNWNNS:1460:8", SYN: 1}}}
	if !reflect.DeepEqual(sum.BySignature, want) {
		t.Errorf("summary %+v, want %+v", sum.BySignature, want)
	}

	var out bytes.Buffer
	j := output.NewJSONLines(&out)
	if err := rep.emitJSON(j, fixedTime); err != nil {
		t.Fatal(err)
	}
	if err := j.Emit(sum); err != nil {
		t.Fatal(err)
	}
	j.Flush()
	golden(t, "syn-signature.json.golden", out.Bytes())
	out.Reset()
	first := tr2Report(t, bare, linux, win)
	first.writeText(&out, fixedTime)
	rep.writeText(&out, fixedTime)
	writeSynSummary(&out, sum, tr.by, 2)
	golden(t, "syn-signature.text.golden", out.Bytes())
}

// tr2Report is interval 1 of TestSynTrackerSignatures again, for the text golden.
func tr2Report(t *testing.T, bare, linux, win probe.SYNSignature) synReport {
	tr := newSynTracker(counterViews(probe.DirIn, twoIfaces[:1]), 0)
	tr.by = synViews{signature: true}
	return tr.interval([]probe.FlagCounters{{SynNoAck: 10}}, probe.SYNTables{Signatures: map[probe.SYNSig]uint64{
		{Sig: bare}: 6, {Sig: linux}: 3, {Sig: win}: 1}}, []uint64{0})
}
