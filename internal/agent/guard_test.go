package agent

import (
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tcplens/tcplens/internal/probe"
)

// fakeGuard is the guard stage's kernel side: counters and sources the
// test sets, rules it records.
type fakeGuard struct {
	c       probe.GuardCounters
	srcs    []probe.GuardSource
	rules   []probe.GuardRules
	failSet error
	walks   int // GuardSources calls
}

func (f *fakeGuard) GuardCounters() (probe.GuardCounters, error) { return f.c, nil }
func (f *fakeGuard) GuardSources() ([]probe.GuardSource, error) {
	f.walks++
	return f.srcs, nil
}
func (f *fakeGuard) SetGuardRules(g probe.GuardRules) error {
	if f.failSet != nil {
		return f.failSet
	}
	f.rules = append(f.rules, g)
	return nil
}

// TestGuardMetrics: drops are split by the mode in force when they were
// counted (across a reload into dry run), blocks and releases follow the
// kernel's block count and the sources blocked now, and reloads are
// counted by result.
func TestGuardMetrics(t *testing.T) {
	var mu sync.Mutex
	m := NewMetrics(&mu, 0)
	fg := &fakeGuard{}
	g := newGuardMetrics(fg, false)
	now := 100 * time.Second
	g.now = func() time.Duration { return now }
	m.guard = g

	fg.c.Packets = 10
	fg.c.Matched[probe.GuardBlock] = 3
	fg.c.Matched[probe.GuardDropPort] = 2
	fg.c.Matched[probe.GuardAllowed] = 1
	fg.c.ScanBlocks = 2
	fg.c.SourcesAdmitted, fg.c.SourcesRefused, fg.c.SourcesFull = 7, 4, 1
	fg.srcs = []probe.GuardSource{
		{Addr: netip.MustParseAddr("10.0.0.1"), BlockStarted: 90 * time.Second, BlockedUntil: 150 * time.Second}, // blocked now
		{Addr: netip.MustParseAddr("10.0.0.2"), BlockStarted: 10 * time.Second, BlockedUntil: 70 * time.Second},  // released
		{Addr: netip.MustParseAddr("10.0.0.3")}, // never blocked
	}
	testutil.CollectAndCount(m) // a scrape: the enforcing period is read

	// Into dry run: later matches are would-drops.
	if err := g.setRules(probe.GuardRules{DryRun: true}); err != nil {
		t.Fatal(err)
	}
	fg.c.Matched[probe.GuardBlock] = 8
	fg.c.Packets = 20
	// A reload the kernel refuses, one refused before (bad file).
	fg.failSet = errors.New("no")
	if err := g.setRules(probe.GuardRules{}); err == nil {
		t.Fatal("a refused set: no error")
	}
	g.reloadFailed()
	// The first source's block expired and the table evicted the second.
	now = 200 * time.Second
	fg.srcs = fg.srcs[2:]

	want := `
# HELP tcplens_guard_drops_total Incoming TCP packets each guard rule dropped (mode enforce), or would have dropped (mode dry_run: none was dropped), on all guarded interfaces together.
# TYPE tcplens_guard_drops_total counter
tcplens_guard_drops_total{mode="dry_run",rule="block"} 5
tcplens_guard_drops_total{mode="dry_run",rule="drop_port"} 0
tcplens_guard_drops_total{mode="dry_run",rule="drop_syn_port"} 0
tcplens_guard_drops_total{mode="dry_run",rule="scan"} 0
tcplens_guard_drops_total{mode="dry_run",rule="syn_rate"} 0
tcplens_guard_drops_total{mode="dry_run",rule="syn_rate_global"} 0
tcplens_guard_drops_total{mode="dry_run",rule="syn_require_mss"} 0
tcplens_guard_drops_total{mode="dry_run",rule="drop_syn_signature"} 0
tcplens_guard_drops_total{mode="enforce",rule="block"} 3
tcplens_guard_drops_total{mode="enforce",rule="drop_port"} 2
tcplens_guard_drops_total{mode="enforce",rule="drop_syn_port"} 0
tcplens_guard_drops_total{mode="enforce",rule="scan"} 0
tcplens_guard_drops_total{mode="enforce",rule="syn_rate"} 0
tcplens_guard_drops_total{mode="enforce",rule="syn_rate_global"} 0
tcplens_guard_drops_total{mode="enforce",rule="syn_require_mss"} 0
tcplens_guard_drops_total{mode="enforce",rule="drop_syn_signature"} 0
# HELP tcplens_guard_packets_total Incoming TCP packets the guard stage decided, on all guarded interfaces together.
# TYPE tcplens_guard_packets_total counter
tcplens_guard_packets_total 20
# HELP tcplens_guard_allowed_total Incoming TCP packets a guard drop rule matched that an allow CIDR let through.
# TYPE tcplens_guard_allowed_total counter
tcplens_guard_allowed_total 1
# HELP tcplens_guard_dry_run 1 while the guard rules in force only count what they would drop, 0 while they drop.
# TYPE tcplens_guard_dry_run gauge
tcplens_guard_dry_run 1
# HELP tcplens_guard_source_blocks_total Sources the guard's scan rule auto-blocked.
# TYPE tcplens_guard_source_blocks_total counter
tcplens_guard_source_blocks_total 2
# HELP tcplens_guard_source_releases_total Auto-blocked sources whose block ended: it expired, or the source table evicted the source.
# TYPE tcplens_guard_source_releases_total counter
tcplens_guard_source_releases_total 2
# HELP tcplens_guard_blocked_sources Sources auto-blocked now.
# TYPE tcplens_guard_blocked_sources gauge
tcplens_guard_blocked_sources 0
# HELP tcplens_guard_source_entries_total Per-source entries the guard made (sources that the SYN-rate and scan rules follow).
# TYPE tcplens_guard_source_entries_total counter
tcplens_guard_source_entries_total 7
# HELP tcplens_guard_untracked_syns_total SYNs of sources the guard could not follow: no admission token (cause admission_rate: the global SYN rate alone governed them) or the source table refused the entry (cause table_full).
# TYPE tcplens_guard_untracked_syns_total counter
tcplens_guard_untracked_syns_total{cause="admission_rate"} 4
tcplens_guard_untracked_syns_total{cause="table_full"} 1
# HELP tcplens_guard_reloads_total Guard rule reloads (SIGHUP), by result: ok, or failed (the old rules stayed in force).
# TYPE tcplens_guard_reloads_total counter
tcplens_guard_reloads_total{result="failed"} 2
tcplens_guard_reloads_total{result="ok"} 1
`
	names := []string{"tcplens_guard_drops_total", "tcplens_guard_packets_total", "tcplens_guard_allowed_total", "tcplens_guard_dry_run",
		"tcplens_guard_source_blocks_total", "tcplens_guard_source_releases_total", "tcplens_guard_blocked_sources",
		"tcplens_guard_source_entries_total", "tcplens_guard_untracked_syns_total", "tcplens_guard_reloads_total"}
	if err := testutil.CollectAndCompare(m, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	if len(fg.rules) != 1 || !fg.rules[0].DryRun {
		t.Errorf("rules set: %+v, want the one dry-run set", fg.rules)
	}
}

// TestGuardReleasesMonotonic: a block the kernel began after its counters
// were read but that the walk of the sources saw makes blocked > blocks for
// one scrape; the releases counter must not go down.
func TestGuardReleasesMonotonic(t *testing.T) {
	var mu sync.Mutex
	m := NewMetrics(&mu, 0)
	fg := &fakeGuard{}
	g := newGuardMetrics(fg, false)
	g.now = func() time.Duration { return 100 * time.Second }
	m.guard = g
	blocked := func(a string) probe.GuardSource {
		return probe.GuardSource{Addr: netip.MustParseAddr(a), BlockStarted: time.Second, BlockedUntil: time.Hour}
	}
	fg.c.ScanBlocks = 3
	fg.srcs = []probe.GuardSource{blocked("10.0.0.1")}
	if got := testutil.ToFloat64(collectOne(m, "tcplens_guard_source_releases_total")); got != 2 {
		t.Fatalf("releases %v, want 2", got)
	}
	fg.srcs = []probe.GuardSource{blocked("10.0.0.1"), blocked("10.0.0.2"), blocked("10.0.0.3")} // the walk ran ahead
	if got := testutil.ToFloat64(collectOne(m, "tcplens_guard_source_releases_total")); got != 2 {
		t.Errorf("releases %v after the race, want still 2", got)
	}
}

// oneMetric is c with only the metrics named name.
type oneMetric struct {
	c    prometheus.Collector
	name string
}

func collectOne(c prometheus.Collector, name string) prometheus.Collector { return oneMetric{c, name} }

func (o oneMetric) Describe(chan<- *prometheus.Desc) {}
func (o oneMetric) Collect(ch chan<- prometheus.Metric) {
	all := make(chan prometheus.Metric)
	go func() { o.c.Collect(all); close(all) }()
	for m := range all {
		if strings.Contains(m.Desc().String(), `fqName: "`+o.name+`"`) {
			ch <- m
		}
	}
}

// TestGuardNoWalkWithoutBlocks: until the kernel has begun a block, a
// scrape does not walk the source table.
func TestGuardNoWalkWithoutBlocks(t *testing.T) {
	var mu sync.Mutex
	m := NewMetrics(&mu, 0)
	fg := &fakeGuard{}
	fg.c.Matched[probe.GuardSYNRate] = 9
	m.guard = newGuardMetrics(fg, false)
	testutil.CollectAndCount(m)
	if fg.walks != 0 {
		t.Errorf("%d walks of the source table with no block begun, want 0", fg.walks)
	}
	fg.c.ScanBlocks = 1
	testutil.CollectAndCount(m)
	if fg.walks != 1 {
		t.Errorf("%d walks once a block began, want 1", fg.walks)
	}
}
