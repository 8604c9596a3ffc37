package integration

import (
	"fmt"
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
			tuples[tp] += r.Uint(t, "count")
		case "syn_source":
			sources[r.String(t, "src")] += r.Uint(t, "count")
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
			checkCounts(t, res.Summary(t, ""), map[string]uint64{
				"syn": syns, "syn_ack": 0, "tuples": n, "sources": 1,
				"untracked": 0, "untracked_sources": 0, "dropped": 0,
			})
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

// TestSynMaxTuplesCountsUntracked gives the tuple map fewer entries than
// connections: every SYN is still counted, and the ones whose tuple was
// evicted are reported as untracked, not lost silently.
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
				"--max-tuples", fmt.Sprint(maxTuples), "--top", "0", "--interval", "200ms")
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
			tracked := sum.Uint(t, "tuples")
			if tracked == 0 || tracked > maxTuples {
				t.Errorf("tuples = %d, want 1 to %d", tracked, maxTuples)
			}
			checkCounts(t, sum, map[string]uint64{"syn": syns, "sources": 1, "untracked_sources": 0})
			// A tuple holds one SYN, or more if its SYN was retransmitted:
			// the untracked ones are the rest.
			checkRange(t, sum, "untracked", n-tracked-(syns-n), syns-tracked)
			if sum.Uint(t, "untracked") == 0 {
				t.Errorf("untracked = 0 with %d connections and --max-tuples %d", n, maxTuples)
			}
		})
	}
}
