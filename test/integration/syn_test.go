package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tcplens/tcplens/internal/testnet"
	"github.com/tcplens/tcplens/internal/testutil"
)

type tuple struct {
	src   string
	sport uint64
	dst   string
	dport uint64
}

func (tp tuple) String() string {
	return fmt.Sprintf("%s:%d->%s:%d", tp.src, tp.sport, tp.dst, tp.dport)
}

// synLines sums the counts of the "syn" and "syn_source" lines so far.
func synLines(t *testing.T, recs []testnet.Record) (tuples map[tuple]uint64, sources map[string]uint64, intervalSYN uint64) {
	t.Helper()
	tuples, sources = map[tuple]uint64{}, map[string]uint64{}
	for _, r := range recs {
		switch r.Type() {
		case "syn":
			tp := tuple{r.String(t, "src"), r.Uint(t, "sport"), r.String(t, "dst"), r.Uint(t, "dport")}
			tuples[tp] += r.Uint(t, "syn")
		case "syn_source":
			sources[r.String(t, "src")] += r.Uint(t, "syn")
		case "syn_interval":
			intervalSYN += r.Uint(t, "syn")
		}
	}
	return tuples, sources, intervalSYN
}

// TestSynTracksEveryConnection runs `tcplens syn` on both ends while A
// opens n connections to B: B's ingress sees n SYNs, each on the exact
// 4-tuple of one connection, and no SYN-ACK; A's ingress sees the n
// SYN-ACKs and no SYN. A retransmitted SYN or SYN-ACK (a busy machine)
// adds to the counts; the namespaces' counters say exactly how many.
func TestSynTracksEveryConnection(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	const n = 16
	for _, sc := range scenarios {
		t.Run(sc.String(), func(t *testing.T) {
			t.Parallel()
			p := testnet.NewPair(t)
			srv := p.B.Listen(t, sc.family, 0)
			args := func(ns *testnet.NS) []string {
				return []string{"syn", "-i", ns.Link, "-o", "json", "--hook", sc.hook, "--top", "0", "--interval", "200ms"}
			}
			atB := p.B.StartTcplens(t, args(p.B)...)
			atA := p.A.StartTcplens(t, args(p.A)...)

			beforeA, beforeB := snmp(t, p.A), snmp(t, p.B)
			conns := p.A.OpenConns(t, srv.Addr, n)
			want := map[tuple]bool{}
			for _, c := range conns {
				want[tuple{c.Local.Addr().String(), uint64(c.Local.Port()), c.Remote.Addr().String(), uint64(c.Remote.Port())}] = true
			}
			testnet.CloseConns(t, conns)
			// Tuples are reported per interval: wait for the one that holds
			// the last SYN.
			testnet.WaitFor(t, 5*time.Second, "every connection in a syn line", func() bool {
				got, _, _ := synLines(t, atB.Output().Records(t))
				return len(got) >= n
			})
			afterA, afterB := snmp(t, p.A), snmp(t, p.B)
			syns := synsSent(t, beforeA, afterA)
			synAcks := n + snmpDelta(t, beforeB, afterB, "TcpExt:TCPSynRetrans")

			res := atB.Stop()
			if res.ExitCode != 0 {
				t.Fatalf("tcplens syn on B exited with %d; stderr: %s", res.ExitCode, res.Stderr)
			}
			sum := res.Summary(t, "")
			checkCounts(t, sum, map[string]uint64{
				"syn": syns, "syn_ack": 0, "attributed": syns,
				"untracked": 0, "untracked_sources": 0, "dropped": 0,
			})
			// Entries are per interval: a connection whose SYN was
			// retransmitted in a later interval has an entry in each.
			checkRange(t, sum, "tuples", n, syns)
			checkRange(t, sum, "sources", 1, syns)
			tuples, sources, intervalSYN := synLines(t, res.Records(t))
			var total uint64
			for tp, count := range tuples {
				total += count
				if !want[tp] {
					t.Errorf("syn line for %v (count %d), which is no test connection", tp, count)
				}
			}
			if total != syns {
				t.Errorf("syn lines count %d SYNs, A sent %d", total, syns)
			}
			for tp := range want {
				if _, ok := tuples[tp]; !ok {
					t.Errorf("no syn line for connection %v", tp)
				}
			}
			if a := p.A.Addr(sc.family).String(); len(sources) != 1 || sources[a] != syns {
				t.Errorf("syn_source lines %v, want only %s with %d", sources, a, syns)
			}
			if intervalSYN != syns {
				t.Errorf("syn_interval lines sum to %d SYNs, want %d", intervalSYN, syns)
			}

			resA := atA.Stop()
			if resA.ExitCode != 0 {
				t.Fatalf("tcplens syn on A exited with %d; stderr: %s", resA.ExitCode, resA.Stderr)
			}
			checkCounts(t, resA.Summary(t, ""), map[string]uint64{"syn": 0, "syn_ack": synAcks, "tuples": 0, "sources": 0})
		})
	}
}

// TestSynMaxTuplesCountsUntracked gives the tuple table fewer entries than
// connections, and an interval longer than the test, so that every SYN
// falls in one table: the first maxTuples SYNs (distinct connections) fill
// it, and every later SYN is counted as untracked, exactly.
func TestSynMaxTuplesCountsUntracked(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	const n, maxTuples = 20, 4
	for _, fam := range testnet.Families {
		t.Run(fam.String(), func(t *testing.T) {
			t.Parallel()
			p := testnet.NewPair(t)
			srv := p.B.Listen(t, fam, 0)
			tl := p.B.StartTcplens(t, "syn", "-i", p.B.Link, "-o", "json", "--hook", "tc",
				"--max-tuples", fmt.Sprint(maxTuples), "--top", "0", "--interval", "1h")
			before := snmp(t, p.A)
			testnet.CloseConns(t, p.A.OpenConns(t, srv.Addr, n))
			testnet.WaitFor(t, 5*time.Second, "B's connections closed", func() bool {
				return p.B.CountSockets(testnet.StateLastAck) == 0
			})
			syns := synsSent(t, before, snmp(t, p.A))
			res := tl.Stop()
			if res.ExitCode != 0 {
				t.Fatalf("tcplens exited with %d; stderr: %s", res.ExitCode, res.Stderr)
			}
			sum := res.Summary(t, "")
			checkCounts(t, sum, map[string]uint64{
				"syn": syns, "tuples": maxTuples, "attributed": maxTuples, "untracked": syns - maxTuples,
				"sources": 1, "untracked_sources": 0,
			})
			tuples, _, _ := synLines(t, res.Records(t))
			if len(tuples) != maxTuples {
				t.Errorf("%d syn lines, want %d: %v", len(tuples), maxTuples, tuples)
			}
		})
	}
}

// TestSynFloodAccountsEverySYN floods A with 200k SYNs from 50k spoofed
// sources, every one a new 4-tuple, into the default table sizes (16384
// tuples per interval): tcplens keeps running, its `syn` is what A's TCP
// received (Tcp:InSegs, A has no other TCP traffic), and every SYN is
// either on a syn line or counted as untracked, exactly.
func TestSynFloodAccountsEverySYN(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	p := testnet.NewPair(t)
	prepareFloodTarget(t, p.A)
	tl := p.A.StartTcplens(t, "syn", "-i", p.A.Link, "-o", "json", "--hook", "tc", "--top", "0", "--interval", "250ms")

	rssBefore := rssKiB(t, tl.PID())
	before := snmp(t, p.A)
	f := flood{syns: 200_000, sources: 50_000, dst: p.A.IPv4.AsSlice(), dport: floodDport, maxTime: 30 * time.Second}
	if testutil.Emulated() != "" {
		// A few thousand SYNs a second get through there, and every one
		// becomes lines to write and read back: 10 s of it keep the
		// package inside its time (215 s of 6.1's run under TCG at 30 s).
		f.maxTime = 10 * time.Second
	}
	sent, took, err := f.send(p.B, p.A)
	if err != nil {
		t.Fatalf("flood: %v", err)
	}
	after := waitSettled(t, p.A)
	received := snmpDelta(t, before, after, "Tcp:InSegs")
	t.Logf("sent %d SYNs in %v (%.0f/s); A's TCP received %d; tcplens RSS %d KiB before, %d KiB after",
		sent, took, float64(sent)/took.Seconds(), received, rssBefore, rssKiB(t, tl.PID()))
	if received == 0 {
		t.Fatal("A's TCP received none of the flood")
	}

	res := tl.Stop()
	if res.ExitCode != 0 {
		t.Fatalf("tcplens syn exited with %d; stderr: %s", res.ExitCode, res.Stderr)
	}
	sum := res.Summary(t, "")
	syn, untracked, attributed := sum.Uint(t, "syn"), sum.Uint(t, "untracked"), sum.Uint(t, "attributed")
	if syn != received {
		t.Errorf("syn = %d, A's TCP received %d (Tcp:InSegs)", syn, received)
	}
	if attributed+untracked != syn {
		t.Errorf("attributed %d + untracked %d = %d, want syn %d", attributed, untracked, attributed+untracked, syn)
	}
	tuples, sources, intervalSYN := synLines(t, res.Records(t))
	// The tables are per interval: they overflow only where one interval's
	// table filled. What a table held is its interval's syn lines (every
	// tuple of the flood is new); the interval's counter is no measure of
	// it: counters are read after the swap and the drain, so SYNs that
	// arrive while a table is drained count in this interval's counters
	// and in the next table (under an emulated CPU a drain took ~2 s:
	// a counter of 23,867 while no table filled). Under an emulated CPU
	// the flood runs at a few thousand SYNs a second and rarely fills one.
	fullest := fullestSynTable(t, res.Records(t))
	if fullest > floodMaxTuples {
		t.Errorf("an interval's table held %d tuples, more than its %d entries", fullest, floodMaxTuples)
	}
	if fullest == floodMaxTuples && untracked == 0 {
		t.Errorf("untracked = 0, yet an interval's table filled (%d tuples)", fullest)
	} else if untracked == 0 {
		t.Logf("no table filled (fullest %d of %d; busiest interval counter %d): nothing to overflow",
			fullest, floodMaxTuples, busiestSynInterval(t, res.Records(t)))
	}
	var onLines, onSources uint64
	for tp, n := range tuples {
		onLines += n
		if tp.dport != floodDport || !strings.HasPrefix(tp.src, "198.1") {
			t.Errorf("syn line for %v, which the flood did not send", tp)
		}
	}
	for _, n := range sources {
		onSources += n
	}
	if onLines != attributed {
		t.Errorf("syn lines hold %d SYNs, summary says %d attributed", onLines, attributed)
	}
	if intervalSYN != syn {
		t.Errorf("syn_interval lines sum to %d SYNs, summary says %d", intervalSYN, syn)
	}
	if us := sum.Uint(t, "untracked_sources"); onSources+us != syn {
		t.Errorf("syn_source lines hold %d SYNs + %d untracked by source, want syn %d", onSources, us, syn)
	}
	t.Logf("syn %d: %d attributed on %d tuple entries, %d untracked (%.1f%%); %d on source entries",
		syn, attributed, sum.Uint(t, "tuples"), untracked, 100*float64(untracked)/float64(syn), onSources)
}

// floodMaxTuples is syn's default --max-tuples, which the flood test uses.
const floodMaxTuples = 16384

// fullestSynTable is the most tuple entries one report listed (its syn
// lines share the report's time): what one interval's table held.
func fullestSynTable(t *testing.T, recs []testnet.Record) int {
	t.Helper()
	perReport := map[string]int{}
	most := 0
	for _, r := range recs {
		if r.Type() == "syn" {
			k := r.String(t, "time") + " " + r.String(t, "interface")
			perReport[k]++
			most = max(most, perReport[k])
		}
	}
	return most
}

// busiestSynInterval is the most SYNs one interface's interval line holds.
func busiestSynInterval(t *testing.T, recs []testnet.Record) uint64 {
	t.Helper()
	var most uint64
	for _, r := range recs {
		if r.Type() == "syn_interval" {
			most = max(most, r.Uint(t, "syn"))
		}
	}
	return most
}
