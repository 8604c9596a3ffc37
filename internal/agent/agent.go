// Package agent is `tcplens agent`: the packet path on a changing set of
// interfaces, the socket path and top's connection model, kept running and
// served as Prometheus metrics over HTTP.
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/tcplens/tcplens/internal/conn"
	"github.com/tcplens/tcplens/internal/diag"
	"github.com/tcplens/tcplens/internal/live"
	"github.com/tcplens/tcplens/internal/probe"
)

// Options are the agent's settings, checked by the CLI.
type Options struct {
	Interfaces      []string       // by name; attached whenever they exist
	InterfacesRegex *regexp.Regexp // nil: none
	Hook            probe.Hook
	Direction       probe.Direction  // packets received, sent or both
	Sources         []string         // socket-path sources (live.Sources)
	Filter          probe.SockFilter // socket-path filters (--port, --host, -4, -6)
	ConnFilter      conn.Filter      // the same filters, for the connection gauges
	Interval        time.Duration
	// SelfNetNSOnly keeps the connection gauges to the agent's own network
	// namespace (otherwise every namespace on the host).
	SelfNetNSOnly bool
	PerRemotePort int // 0: no remote-port labels; else the cap on ports
	BPFStats      bool
	Listen        string
	WebConfigFile string
	Pprof         bool
	Log           func(msg string) // for people (stderr)
	// EventLog, when set, sees every event after the metrics (--log); it
	// is flushed at each refresh and on Close.
	EventLog EventLog
	// Guard, when set, runs the guard stage with these rules on every
	// interface the agent attaches (--guard-rules).
	Guard *probe.GuardRules
}

// EventLog is the JSON-lines event log.
type EventLog interface {
	live.Observer
	Flush() error
	Close() error
}

// Agent is one running agent.
type Agent struct {
	opts    Options
	mu      sync.Mutex // the feed's lock: tracker and event counters
	tracker *conn.Tracker
	feed    *live.Feed
	pool    *probe.PacketPool
	metrics *Metrics
	stats   io.Closer

	linkMu    sync.Mutex // one link change at a time (link events, reloads)
	matchMu   sync.Mutex
	names     []string
	regex     *regexp.Regexp
	failed    map[string]string // interface name -> why attaching failed
	srcFailed map[string]error  // socket-path source -> why it did not attach
	ready     atomic.Bool
	selfNetNS uint64
	watcher   *probe.LinkWatcher
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

var statsHeld atomic.Bool

// Start loads and attaches everything. What cannot attach is logged and
// kept out of readiness; an error means nothing is left attached.
func Start(ctx context.Context, opts Options) (*Agent, error) {
	a := &Agent{opts: opts, tracker: conn.NewTracker(conn.DefaultThresholds), names: opts.Interfaces,
		regex: opts.InterfacesRegex, failed: map[string]string{}, selfNetNS: diag.SelfNamespace()}
	a.metrics = NewMetrics(&a.mu, opts.PerRemotePort)
	if opts.EventLog != nil {
		a.metrics.next = opts.EventLog
	}
	ctx, a.cancel = context.WithCancel(ctx)
	if err := probe.CheckPrivileges("flags"); err != nil {
		a.Close()
		return nil, err
	}
	if opts.BPFStats {
		st, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
		if err != nil {
			a.Close()
			if errors.Is(err, os.ErrPermission) {
				err = fmt.Errorf("%w (CAP_SYS_ADMIN)", probe.ErrPrivileges)
			}
			return nil, fmt.Errorf("--bpf-stats: enable the kernel's BPF run-time statistics: %w", err)
		}
		a.stats = st
		statsHeld.Store(true)
	}
	pcfg := probe.PacketConfig{Direction: opts.Direction}
	if opts.Guard != nil {
		// Every slot the pool adds shares this copy's guard maps, so the
		// rules set here hold on every interface attached later.
		pcfg.Guard, pcfg.GuardRules = true, opts.Guard
	}
	pool, err := probe.NewPacketPool(pcfg, opts.Hook)
	if err != nil {
		a.Close()
		return nil, err
	}
	a.pool = pool
	a.metrics.pool = pool
	if opts.Guard != nil {
		a.metrics.guard = newGuardMetrics(pool, opts.Guard.DryRun)
	}
	// Subscribe before listing, so that no link falls between the two.
	if a.watcher, err = probe.WatchLinks(); err != nil {
		a.Close()
		return nil, err
	}
	links, err := netlink.LinkList()
	if err != nil {
		a.Close()
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	for _, l := range links {
		a.linkChanged(probe.LinkEvent{Name: l.Attrs().Name, Index: l.Attrs().Index})
	}
	a.feed = live.Start(&a.mu, a.tracker, live.Options{Sources: opts.Sources, Filter: opts.Filter, Observer: a.metrics,
		Errors: func(source string, err error) { a.log("%s: reading stopped: %v", source, err) }})
	a.metrics.feed, a.metrics.asked = a.feed, opts.Sources
	a.srcFailed = a.feed.Failed
	for _, m := range a.feed.Missing {
		a.log("socket path: %s", m)
	}
	a.wg.Add(2)
	go a.followLinks(ctx)
	go a.refreshLoop(ctx)
	a.refresh() // the first snapshot: the baseline of the first interval
	a.ready.Store(true)
	return a, nil
}

func (a *Agent) log(format string, args ...any) {
	if a.opts.Log != nil {
		a.opts.Log(fmt.Sprintf(format, args...))
	}
}

// wanted says whether an interface of this name is to be watched.
func (a *Agent) wanted(name string) bool {
	a.matchMu.Lock()
	defer a.matchMu.Unlock()
	return slices.Contains(a.names, name) || (a.regex != nil && a.regex.MatchString(name))
}

// linkChanged attaches to an interface that appeared and should be
// watched, and releases one that went away or no longer matches.
func (a *Agent) linkChanged(ev probe.LinkEvent) {
	a.linkMu.Lock()
	defer a.linkMu.Unlock()
	a.linkChangedLocked(ev)
}

func (a *Agent) linkChangedLocked(ev probe.LinkEvent) {
	if ev.Gone {
		if old, ok := a.pool.Release(ev.Index, true); ok {
			a.log("interface %s (index %d) went away: released", old.Interface.Name, ev.Index)
		}
		return
	}
	attachedAs := ""
	for _, at := range a.pool.Attachments() {
		if at.Interface.Index == ev.Index {
			attachedAs = at.Interface.Name
		}
	}
	want := a.wanted(ev.Name)
	switch {
	case attachedAs != "" && (!want || attachedAs != ev.Name):
		// Renamed, or no longer asked for (after a reload).
		a.pool.Release(ev.Index, false)
		a.log("interface %s (index %d) released: no longer matches", attachedAs, ev.Index)
		if want {
			a.linkChangedLocked(ev)
		}
	case attachedAs == "" && want:
		at, err := a.pool.Attach(probe.Interface{Name: ev.Name, Index: ev.Index})
		a.matchMu.Lock()
		if err != nil {
			a.failed[ev.Name] = err.Error()
		} else {
			delete(a.failed, ev.Name)
		}
		a.matchMu.Unlock()
		if err != nil {
			a.log("%v", err)
			return
		}
		a.log("interface %s (index %d): attached with %s %s", ev.Name, ev.Index, at.Hook, at.Mode)
	}
}

func (a *Agent) followLinks(ctx context.Context) {
	defer a.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-a.watcher.Events():
			if !ok {
				if ctx.Err() == nil {
					a.log("watching interfaces stopped: %v; interfaces that appear now are not attached", a.watcher.Err())
					a.ready.Store(false)
				}
				return
			}
			a.linkChanged(ev)
		}
	}
}

func (a *Agent) refreshLoop(ctx context.Context) {
	defer a.wg.Done()
	t := time.NewTicker(a.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.refresh()
		}
	}
}

// refresh takes a snapshot of every socket and updates the gauges.
func (a *Agent) refresh() {
	var keep func(diag.Namespace) bool
	if a.opts.SelfNetNSOnly {
		keep = func(ns diag.Namespace) bool { return ns.Inode == a.selfNetNS }
	}
	snap, _, err := diag.SnapshotWhere(time.Now, keep)
	if err != nil {
		a.metrics.refreshFailed()
		a.log("snapshot: %v", err)
		return
	}
	a.mu.Lock()
	a.feed.CountLost()
	conns, tot := a.tracker.Refresh(snap)
	if a.opts.EventLog != nil {
		if err := a.opts.EventLog.Flush(); err != nil {
			a.log("event log: %v", err)
		}
	}
	a.mu.Unlock()
	// A new slice: the tracker keeps conns as its history.
	kept := make([]conn.Conn, 0, len(conns))
	for i := range conns {
		if a.opts.SelfNetNSOnly && conns[i].NetNS != a.selfNetNS {
			continue
		}
		if a.opts.ConnFilter.Match(&conns[i]) {
			kept = append(kept, conns[i])
		}
	}
	conns = kept
	a.metrics.refreshed(conns, tot)
}

// Reload applies new interface choices: interfaces now wanted are
// attached, those no longer wanted released.
func (a *Agent) Reload(names []string, regex *regexp.Regexp) error {
	a.matchMu.Lock()
	a.names, a.regex = names, regex
	a.failed = map[string]string{}
	a.matchMu.Unlock()
	links, err := netlink.LinkList()
	if err != nil {
		return fmt.Errorf("list interfaces: %w", err)
	}
	for _, l := range links {
		a.linkChanged(probe.LinkEvent{Name: l.Attrs().Name, Index: l.Attrs().Index})
	}
	return nil
}

// ErrNoGuard: guard rules given to an agent started without the stage.
var ErrNoGuard = errors.New("the agent started without --guard-rules; the guard stage needs a restart")

// SetGuardRules replaces the guard rules in force (SIGHUP), through map
// updates: every packet meets the old rules or the new ones. On error the
// old rules stay, and the failure is counted.
func (a *Agent) SetGuardRules(g probe.GuardRules) error {
	if a.metrics.guard == nil {
		return ErrNoGuard
	}
	return a.metrics.guard.setRules(g)
}

// GuardReloadFailed counts a guard reload refused before it reached the
// kernel (a bad rules file, a lockout).
func (a *Agent) GuardReloadFailed() {
	if a.metrics.guard != nil {
		a.metrics.guard.reloadFailed()
	}
}

// NotReady says what keeps the agent from being ready: a source asked for
// that did not attach (unless this kernel lacks it), an interface that
// could not be attached. Empty: ready.
func (a *Agent) NotReady() []string {
	if !a.ready.Load() {
		return []string{"starting"}
	}
	var out []string
	for src, err := range a.srcFailed {
		if !errors.Is(err, probe.ErrUnsupported) {
			out = append(out, src+": "+err.Error())
		}
	}
	a.matchMu.Lock()
	for name, why := range a.failed {
		out = append(out, name+": "+why)
	}
	a.matchMu.Unlock()
	slices.Sort(out)
	return out
}

// Metrics is the collector to register.
func (a *Agent) Metrics() *Metrics { return a.metrics }

// Close detaches everything.
func (a *Agent) Close() error {
	a.ready.Store(false)
	a.cancel()
	if a.watcher != nil {
		a.watcher.Close()
	}
	a.wg.Wait()
	var errs []error
	if a.feed != nil {
		a.feed.Stop()
		a.feed = nil
	}
	if a.opts.EventLog != nil {
		errs = append(errs, a.opts.EventLog.Close())
		a.opts.EventLog = nil
	}
	if a.pool != nil {
		errs = append(errs, a.pool.Close())
		a.pool = nil
	}
	if a.stats != nil {
		a.stats.Close()
		statsHeld.Store(false)
	}
	return errors.Join(errs...)
}

// Listen opens the HTTP listener (before anything is loaded, so that a
// taken port fails fast).
func Listen(addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return l, nil
}
