package agent

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/tcplens/tcplens/internal/probe"
)

// guardModes are the values of guard_drops_total's mode label.
var guardModes = [2]string{"enforce", "dry_run"}

// guardStage is the part of the packet pool the guard metrics read.
type guardStage interface {
	GuardCounters() (probe.GuardCounters, error)
	GuardSources() ([]probe.GuardSource, error)
	SetGuardRules(probe.GuardRules) error
}

// guardMetrics turns the guard stage's counters into metrics. The kernel
// counts matches per rule whatever the mode; drops are split by mode here,
// by reading the counters at every scrape and just before each rule
// change, so a match is counted under the mode in force when it was read.
type guardMetrics struct {
	stage guardStage
	now   func() time.Duration // CLOCK_MONOTONIC, the clock of blocked_until

	mu       sync.Mutex
	dryRun   bool
	last     probe.GuardCounters // the kernel's counters at the last read
	drops    [2][probe.GuardNumRules]uint64
	released uint64
	reloads  [2]uint64 // ok, failed
}

func newGuardMetrics(stage guardStage, dryRun bool) *guardMetrics {
	return &guardMetrics{stage: stage, dryRun: dryRun, now: monotonic}
}

func monotonic() time.Duration {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) // bpf_ktime_get_ns's clock
	return time.Duration(ts.Nano())
}

// readLocked reads the kernel's counters and credits the matches since the
// last read to the mode in force.
func (g *guardMetrics) readLocked() (probe.GuardCounters, error) {
	cur, err := g.stage.GuardCounters()
	if err != nil {
		return cur, err
	}
	mode := 0
	if g.dryRun {
		mode = 1
	}
	for r := range cur.Matched {
		if cur.Matched[r] >= g.last.Matched[r] {
			g.drops[mode][r] += cur.Matched[r] - g.last.Matched[r]
		}
	}
	g.last = cur
	return cur, nil
}

// setRules installs new rules, counting the reload as ok or failed. The
// counters are read first, so what the old rules matched stays theirs.
func (g *guardMetrics) setRules(r probe.GuardRules) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, _ = g.readLocked() // a failed read leaves the matches for the next one
	if err := g.stage.SetGuardRules(r); err != nil {
		g.reloads[1]++
		return err
	}
	g.dryRun = r.DryRun
	g.reloads[0]++
	return nil
}

// reloadFailed counts a reload refused before it reached the kernel (a bad
// file, a lockout).
func (g *guardMetrics) reloadFailed() {
	g.mu.Lock()
	g.reloads[1]++
	g.mu.Unlock()
}

func (g *guardMetrics) collect(counter func(*prometheus.Desc, uint64, ...string), gauge func(*prometheus.Desc, float64, ...string)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	counter(descGuardReloads, g.reloads[0], "ok")
	counter(descGuardReloads, g.reloads[1], "failed")
	dry := 0.0
	if g.dryRun {
		dry = 1
	}
	gauge(descGuardDryRun, dry)
	// The counters first, then the walk: a block begun in between is seen
	// by the walk only, which makes the releases too few for one scrape,
	// never too many.
	cur, err := g.readLocked()
	if err != nil {
		return
	}
	blocked := uint64(0)
	if cur.ScanBlocks > 0 {
		// Walked only once a block began: the walk costs a few syscalls
		// per source of a table of up to --max-sources entries, and
		// without the scan rule no source is ever blocked.
		srcs, err := g.stage.GuardSources()
		if err != nil {
			return
		}
		now := g.now()
		for _, s := range srcs {
			if s.BlockStarted != 0 && s.BlockedUntil > now {
				blocked++
			}
		}
	}
	// Every block the kernel began is either in force or over (expired or
	// evicted with its entry); kept monotonic against the race above.
	if cur.ScanBlocks >= blocked && cur.ScanBlocks-blocked > g.released {
		g.released = cur.ScanBlocks - blocked
	}
	counter(descGuardPackets, cur.Packets)
	for mode, name := range guardModes {
		for r := probe.GuardBlock; r < probe.GuardNumRules; r++ {
			counter(descGuardDrops, g.drops[mode][r], r.String(), name)
		}
	}
	counter(descGuardAllowed, cur.Matched[probe.GuardAllowed])
	counter(descGuardBlocks, cur.ScanBlocks)
	counter(descGuardReleases, g.released)
	gauge(descGuardBlocked, float64(blocked))
	counter(descGuardAdmitted, cur.SourcesAdmitted)
	counter(descGuardLost, cur.SourcesRefused, "admission_rate")
	counter(descGuardLost, cur.SourcesFull, "table_full")
}
