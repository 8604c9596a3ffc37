package cli

import (
	"bytes"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

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
		r := newFlagsReporter(Env{Stdout: &out, Stderr: &out}, format, twoIfaces)
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

func TestSynTrackerIntervalsAndUntracked(t *testing.T) {
	attached := twoIfaces[:1]
	tr := newSynTracker(attached, 2)
	a := tuple(0, "10.0.0.1", 40000, "10.0.0.2", 80)
	b := tuple(0, "10.0.0.1", 40001, "10.0.0.2", 80)
	c := tuple(0, "fd00::1", 40002, "fd00::2", 443)

	// Interval 1: a=3, b=1; 4 SYNs counted, all tracked.
	rep := tr.interval(synSnapshot{
		counters: []probe.FlagCounters{{SynNoAck: 4, SynAck: 1}},
		tuples:   map[probe.SYNTuple]uint64{a: 3, b: 1},
		sources:  map[probe.SYNSource]uint64{source(0, "10.0.0.1"): 4},
	})
	if got := rep[0]; got.syn != 4 || got.synAck != 1 || got.untracked != 0 || len(got.tuples) != 2 ||
		got.tuples[0].SYNTuple != a || got.tuples[0].count != 3 || got.tuples[1].count != 1 {
		t.Fatalf("interval 1: %+v", got)
	}

	// Interval 2: a grew by 2, b was evicted (its 1 SYN is lost), c is new
	// with 2 and one more SYN was lost with an evicted entry: 10 counted in
	// total, 3+2+2 = 7 tracked, so 3 untracked (1 from b, 2 more).
	rep = tr.interval(synSnapshot{
		counters: []probe.FlagCounters{{SynNoAck: 10, SynAck: 1}},
		tuples:   map[probe.SYNTuple]uint64{a: 5, c: 2},
		sources:  map[probe.SYNSource]uint64{source(0, "10.0.0.1"): 6, source(0, "fd00::1"): 2},
	})
	got := rep[0]
	if got.syn != 6 || got.synAck != 0 || got.untracked != 3 {
		t.Errorf("interval 2 totals: syn %d syn_ack %d untracked %d; want 6 0 3", got.syn, got.synAck, got.untracked)
	}
	if len(got.tuples) != 2 || got.tuples[0].count != 2 || got.tuples[1].count != 2 {
		t.Errorf("interval 2 tuples: %+v", got.tuples)
	}
	// Equal counts sort by address: 10.0.0.1 before fd00::1.
	if got.tuples[0].SYNTuple != a || got.tuples[1].SYNTuple != c {
		t.Errorf("interval 2 order: %+v", got.tuples)
	}

	// Interval 3: b comes back with a fresh count of 1 after its eviction.
	rep = tr.interval(synSnapshot{
		counters: []probe.FlagCounters{{SynNoAck: 11}},
		tuples:   map[probe.SYNTuple]uint64{a: 5, c: 2, b: 1},
		sources:  map[probe.SYNSource]uint64{source(0, "10.0.0.1"): 7, source(0, "fd00::1"): 2},
	})
	if got := rep[0]; len(got.tuples) != 1 || got.tuples[0].SYNTuple != b || got.tuples[0].count != 1 || got.untracked != 0 {
		t.Errorf("interval 3: %+v", got)
	}

	sum := tr.summary(synSnapshot{
		counters: []probe.FlagCounters{{SynNoAck: 11, SynAck: 2, Dropped: 1}},
		tuples:   map[probe.SYNTuple]uint64{a: 5, c: 2, b: 1},
		sources:  map[probe.SYNSource]uint64{source(0, "10.0.0.1"): 7, source(0, "fd00::1"): 2},
	}, time.Second)
	want := output.SYNSummary{Type: "summary", DurationSeconds: 1, SYN: 11, SYNAck: 2, Dropped: 1,
		Tuples: 3, Sources: 2, Untracked: 3, UntrackedSources: 2}
	if sum != want {
		t.Errorf("summary %+v, want %+v", sum, want)
	}
}

func TestSynTopLimitsAndTransientGap(t *testing.T) {
	tr := newSynTracker(twoIfaces[:1], 1)
	a := tuple(0, "10.0.0.1", 1, "10.0.0.2", 80)
	b := tuple(0, "10.0.0.3", 1, "10.0.0.2", 80)
	// The counter is bumped before the tuple: a snapshot in between sees
	// one SYN more than the maps hold. That gap is reported once and never
	// taken back.
	rep := tr.interval(synSnapshot{
		counters: []probe.FlagCounters{{SynNoAck: 6}},
		tuples:   map[probe.SYNTuple]uint64{a: 4, b: 1},
		sources:  map[probe.SYNSource]uint64{},
	})
	if len(rep[0].tuples) != 1 || rep[0].tuples[0].SYNTuple != a {
		t.Errorf("--top 1 should keep only the busiest tuple: %+v", rep[0].tuples)
	}
	if rep[0].untracked != 1 {
		t.Errorf("untracked %d, want 1", rep[0].untracked)
	}
	rep = tr.interval(synSnapshot{
		counters: []probe.FlagCounters{{SynNoAck: 6}},
		tuples:   map[probe.SYNTuple]uint64{a: 5, b: 1},
		sources:  map[probe.SYNSource]uint64{},
	})
	if rep[0].untracked != 0 {
		t.Errorf("gap closed: untracked %d, want 0", rep[0].untracked)
	}
}

func TestSynJSONRecords(t *testing.T) {
	var out bytes.Buffer
	j := output.NewJSONLines(&out)
	rep := synReport{{
		name: "veth0", syn: 3, synAck: 1, dropped: 1, untracked: 0,
		tuples:  []countedTuple{{tuple(0, "fd00:200::1", 40000, "fd00:200::2", 8080), 2}, {tuple(0, "10.200.0.1", 5, "10.200.0.2", 22), 1}},
		sources: []countedSource{{source(0, "fd00:200::1"), 2}},
	}}
	if err := rep.emitJSON(j, fixedTime); err != nil {
		t.Fatal(err)
	}
	j.Flush()
	golden(t, "syn.json.golden", out.Bytes())
	out.Reset()
	rep.writeText(&out, fixedTime)
	writeSynSummary(&out, output.SYNSummary{Type: "summary", DurationSeconds: 2, SYN: 3, SYNAck: 1, Tuples: 2, Sources: 1})
	golden(t, "syn.text.golden", out.Bytes())
}
