package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/tcplens/tcplens/internal/conn"
	"github.com/tcplens/tcplens/internal/diag"
	"github.com/tcplens/tcplens/internal/live"
	"github.com/tcplens/tcplens/internal/output"
	"github.com/tcplens/tcplens/internal/probe"
	"github.com/tcplens/tcplens/internal/tui"
)

func init() {
	register("top", "every TCP connection in every network namespace, live, with a verdict on its health", runTop)
}

// topEventSources are the socket-path sources top can attach, in the
// order it attaches them.
var topEventSources = live.Sources

// topMemoryLimit is top's soft memory limit unless GOMEMLIMIT says otherwise.
const topMemoryLimit = 48 << 20

type topOptions struct {
	groupBy  conn.GroupBy
	filter   conn.Filter
	noEvents bool
	events   []string // which socket-path sources to attach
	tcpInfo  bool
}

func runTop(ctx context.Context, env Env, args []string) error {
	fs := pflag.NewFlagSet("top", pflag.ContinueOnError)
	c, sf := &common{}, &sockFlags{}
	c.register(fs, time.Second)
	fs.Lookup("count").Usage = "exit after `N` refreshes (0: no limit)"
	fs.Lookup("output").Usage = "text or json (one object per line); without it, the full screen on a terminal and text otherwise"
	fs.Lookup("ready-file").Usage = "write `PATH` once the events are attached and the first snapshot taken"
	sf.register(fs)
	var groupBy string
	var opts topOptions
	fs.StringVar(&groupBy, "group-by", "", "group connections by `KEY`: process, lport, raddr, rnet/24 or container")
	fs.BoolVar(&opts.noEvents, "no-events", false, "snapshots only: no socket-path tracepoints between refreshes")
	fs.StringSliceVar(&opts.events, "events", topEventSources, "attach these socket-path `SOURCES` between refreshes: retrans, resets, states, drops")
	fs.BoolVar(&opts.tcpInfo, "tcp-info", false, "with -o json: add each connection's TCP_INFO fields")
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return err
	}
	kf, err := sf.filter()
	if err != nil {
		return err
	}
	opts.filter = conn.Filter{Ports: kf.Ports, LPorts: kf.LPorts, RPorts: kf.RPorts, Hosts: kf.Hosts, Family: kf.Family}
	if groupBy != "" {
		if opts.groupBy, err = conn.ParseGroupBy(groupBy); err != nil {
			return usageError{err.Error()}
		}
	}
	for _, e := range opts.events {
		if !slices.Contains(topEventSources, e) {
			return usagef("--events: unknown source %q: want some of %s", e, strings.Join(topEventSources, ","))
		}
	}
	if os.Geteuid() != 0 {
		// Other users' sockets show without their TCP_INFO owners and
		// namespaces: say so rather than show a partial host as whole.
		return fmt.Errorf("top reads every network namespace and process: %w", probe.ErrPrivileges)
	}

	if os.Getenv("GOMEMLIMIT") == "" {
		// Each refresh makes garbage in proportion to the sockets (netlink
		// messages, records); a soft limit makes the collector run before
		// the heap doubles, keeping 10,000 connections well under 64 MiB
		// (BENCHMARKS.md) for a little more CPU.
		debug.SetMemoryLimit(topMemoryLimit)
	}
	t := &topRun{env: env, c: c, opts: opts, tracker: conn.NewTracker(conn.DefaultThresholds)}
	if !opts.noEvents && len(opts.events) > 0 {
		t.startEvents(kf)
		defer t.stopEvents()
	} else {
		t.missing = []string{"off (--no-events): connections that open and close between refreshes are not seen"}
	}
	for _, e := range topEventSources {
		if !opts.noEvents && len(opts.events) > 0 && !slices.Contains(opts.events, e) {
			t.missing = append(t.missing, e+": not asked for (--events)")
		}
	}
	// The first snapshot is the baseline of the first interval's rates.
	if _, err := t.refresh(); err != nil {
		return err
	}
	if err := writeReadyFile(c.readyFile, "top: first snapshot taken"); err != nil {
		return err
	}
	if !fs.Changed("output") && isTerminal(env.Stdout) {
		t.opts.tcpInfo = true // for the detail view
		regroup := func(key string) []output.TopGroupRecord {
			g, err := conn.ParseGroupBy(key)
			if err != nil {
				return nil
			}
			return t.groups(g, timestamp(time.Now()))
		}
		return tui.Run(ctx, tui.Options{Interval: c.interval, GroupBy: string(opts.groupBy), Duration: c.duration,
			Count: c.count, Regroup: regroup},
			func() (*tui.Frame, error) {
				f, err := t.refresh()
				if err != nil {
					return nil, err
				}
				return f, nil
			})
	}
	out := output.NewJSONLines(env.Stdout)
	return runPeriodic(ctx, c, func(now time.Time) error {
		f, err := t.refresh()
		if err != nil {
			return err
		}
		if c.format == output.JSON {
			for i := range f.Conns {
				if err := out.Emit(&f.Conns[i]); err != nil {
					return err
				}
			}
			for i := range f.Groups {
				if err := out.Emit(&f.Groups[i]); err != nil {
					return err
				}
			}
			if err := out.Emit(f.Totals); err != nil {
				return err
			}
			return out.Flush()
		}
		return output.TopText(env.Stdout, f.Totals, f.Conns, f.Groups)
	})
}

func isTerminal(w any) bool {
	if u, ok := w.(interface{ Underlying() io.Writer }); ok {
		w = u.Underlying() // the checked writer Main wraps stdout in
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// topRun is one `top`: the tracker, fed by snapshots and by the
// socket-path events between them.
type topRun struct {
	env  Env
	c    *common
	opts topOptions

	mu      sync.Mutex // guards tracker, which the event readers feed too
	tracker *conn.Tracker

	last    []conn.Conn // the last refresh's connections, filtered
	frame   *tui.Frame  // tests only: the last rendered refresh
	feed    *live.Feed  // nil without events
	missing []string
}

// refresh takes a snapshot and renders it into records.
func (t *topRun) refresh() (*tui.Frame, error) {
	snap, warnings, err := diag.Snapshot(time.Now)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	if t.feed != nil {
		t.feed.CountLost()
	}
	conns, tot := t.tracker.Refresh(snap)
	t.mu.Unlock()
	tot.EventsMissing = t.missing
	return t.render(conns, tot, warnings), nil
}

// render filters and converts to output records.
func (t *topRun) render(conns []conn.Conn, tot conn.Totals, warnings []string) *tui.Frame {
	now := timestamp(tot.Time)
	// conns is the tracker's history: a filter that drops some copies the
	// rest rather than filter in place.
	kept := conns
	for i := range conns {
		if !t.opts.filter.Match(&conns[i]) {
			kept = slices.Clone(conns[:i])
			for j := i + 1; j < len(conns); j++ {
				if t.opts.filter.Match(&conns[j]) {
					kept = append(kept, conns[j])
				}
			}
			break
		}
	}
	f := &tui.Frame{Conns: make([]output.TopConnRecord, 0, len(kept))}
	byState, byVerdict := map[string]int{}, map[string]int{}
	var open int
	var retrans uint64
	for i := range kept {
		c := &kept[i]
		f.Conns = append(f.Conns, topRecord(now, c, t.opts.tcpInfo))
		retrans += c.RetransInterval
		if !c.Closed {
			open++
			byState[conn.StateName(c.State)]++
			byVerdict[c.Verdict.String()]++
		}
	}
	t.last = kept
	for _, c := range t.tracker.RecentlyClosed() {
		if t.opts.filter.Match(&c) {
			f.Recent = append(f.Recent, topRecord(now, &c, false))
		}
	}
	if t.opts.groupBy != conn.GroupNone {
		f.Groups = t.groups(t.opts.groupBy, now)
	}
	f.Totals = &output.TopTotalsRecord{Type: "totals", Time: now, IntervalSeconds: tot.Elapsed.Seconds(),
		Connections: open, Namespaces: tot.Namespaces, ByState: byState, ByVerdict: byVerdict,
		NewConnections: tot.NewConnections, NewPerSec: tot.PerSecond(tot.NewConnections), Closed: tot.Closed,
		RetransSegments: retrans, RetransPerSec: tot.PerSecond(retrans), SYNRetrans: tot.SYNRetrans,
		ResetsSent: tot.ResetsSent, ResetsReceived: tot.ResetsReceived,
		ResetsSentPerSec: tot.PerSecond(tot.ResetsSent), ResetsReceivedPerSec: tot.PerSecond(tot.ResetsReceived),
		ListenOverflows: tot.ListenOverflows, ListenByNetNS: listenByNetNS(tot.ListenByNetNS),
		ListenDrops: tot.ListenDrops, Lost: tot.Lost, EventsMissing: tot.EventsMissing, Warnings: warnings,
		DropsByReason: tot.Drops, Handshakes: tot.Handshakes,
		HandshakeAvgUS: micros(tot.HandshakeAvg), HandshakeMaxUS: micros(tot.HandshakeMax)}
	if f.Totals.DropsByReason == nil {
		f.Totals.DropsByReason = map[string]uint64{}
	}
	for _, n := range tot.Drops {
		f.Totals.Drops += n
	}
	return f
}

func listenByNetNS(m map[uint64]conn.ListenCounts) map[uint64]output.TopListenCounts {
	if len(m) == 0 {
		return nil
	}
	out := make(map[uint64]output.TopListenCounts, len(m))
	for ns, c := range m {
		out[ns] = output.TopListenCounts{Name: c.Name, Overflows: c.Overflows, Drops: c.Drops}
	}
	return out
}

// groups groups the last refresh's connections.
func (t *topRun) groups(by conn.GroupBy, now string) []output.TopGroupRecord {
	var out []output.TopGroupRecord
	for _, g := range conn.Groups(t.last, by) {
		out = append(out, output.TopGroupRecord{Type: "group", Time: now, GroupBy: string(by),
			Key: g.Key, Connections: g.Connections, TxBytesPerSec: g.TxBps, RxBytesPerSec: g.RxBps,
			RetransInterval: g.Retrans, WorstVerdict: g.Worst.String(), ConnShare: g.ConnShare, ThroughputShare: g.ThroughputShare})
	}
	return out
}

func topRecord(now string, c *conn.Conn, withInfo bool) output.TopConnRecord {
	r := output.TopConnRecord{Type: "conn", Time: now, Conn: connRecord(c.Local, c.Remote), NetNS: c.NetNS,
		NetNSName: c.NetNSName, State: conn.StateName(c.State), Inode: c.Inode, Closed: c.Closed,
		PID: c.Owner.PID, Comm: c.Owner.Comm, Cgroup: c.Owner.Cgroup, Container: c.Owner.Container,
		PodUID: c.Owner.PodUID, Unit: c.Owner.Unit, AgeSeconds: c.Age.Seconds(), AgeExact: c.AgeExact,
		SRTTUS: micros(c.SRTT), MinRTTUS: micros(c.MinRTT), Cwnd: c.Cwnd, SndWnd: c.SndWnd,
		RetransTotal: c.RetransTotal, RetransInterval: c.RetransInterval, TxBytesPerSec: c.TxBps, RxBytesPerSec: c.RxBps,
		SendQ: c.SendQ, NotSent: c.NotSent, RecvQ: c.RecvQ, Verdict: c.Verdict.String(), Reasons: c.Reasons, Events: c.Events}
	if r.Reasons == nil {
		r.Reasons = []string{}
	}
	if c.State == conn.StateListen {
		aq, bl := c.RecvQ, c.SendQ
		r.AcceptQ, r.Backlog = &aq, &bl
		r.SendQ, r.RecvQ = 0, 0
	}
	if withInfo && c.Info != nil {
		r.TCPInfo = c.Info
	}
	return r
}

// startEvents attaches the socket-path tracepoints that `top` reads
// between refreshes; each that cannot attach is said in the header.
func (t *topRun) startEvents(f probe.SockFilter) {
	t.feed = live.Start(&t.mu, t.tracker, live.Options{Sources: t.opts.events, Filter: f,
		Errors: func(source string, err error) {
			fmt.Fprintf(t.env.Stderr, "tcplens top: %s: %v\n", source, err)
		}})
	t.missing = append(t.missing, t.feed.Missing...)
}

func (t *topRun) stopEvents() {
	if t.feed != nil {
		t.feed.Stop()
	}
}
