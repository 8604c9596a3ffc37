package cli

import (
	"context"
	"errors"
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
	"github.com/tcplens/tcplens/internal/events"
	"github.com/tcplens/tcplens/internal/output"
	"github.com/tcplens/tcplens/internal/probe"
	"github.com/tcplens/tcplens/internal/tui"
)

func init() {
	register("top", "every TCP connection in every network namespace, live, with a verdict on its health", runTop)
}

// topEventSources are the socket-path sources top can attach, in the
// order it attaches them.
var topEventSources = []string{"retrans", "resets", "states", "drops"}

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

	last     []conn.Conn // the last refresh's connections, filtered
	frame    *tui.Frame  // tests only: the last rendered refresh
	readers  []*sockTrace
	lostSeen []uint64
	missing  []string
	wg       sync.WaitGroup
	stop     chan struct{}
}

// refresh takes a snapshot and renders it into records.
func (t *topRun) refresh() (*tui.Frame, error) {
	snap, warnings, err := diag.Snapshot(time.Now)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	for i, r := range t.readers {
		if k, err := r.reader.Lost(); err == nil {
			if n := k.RingBuffer + k.MapFull + k.UnseenClose; n >= t.lostSeen[i] {
				t.tracker.Lost(n - t.lostSeen[i])
				t.lostSeen[i] = n
			}
		}
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
	if err := prepareBPF(); err != nil {
		t.missing = append(t.missing, "none: "+err.Error())
		return
	}
	t.stop = make(chan struct{})
	clock := events.NewClock()
	// The reason names come from the kernel's BTF: read only for the
	// sources asked for (start-up time).
	// A kernel without enum sk_rst_reason (6.1) has no names: reasons
	// stays a nil interface then, never a nil *EnumNames inside one.
	var reasons events.EnumNamer
	if slices.Contains(t.opts.events, "resets") {
		if r, err := probe.ResetReasons(); err == nil && r != nil {
			reasons = r
		}
	}
	opts := probe.SockTracerOptions{Filter: f}
	type source struct {
		what   string
		load   func(probe.SockTracerOptions) (*probe.SockTracer, error)
		handle func(raw []byte) error
	}
	var rt events.Retransmit
	var rs events.Reset
	var sc events.StateChange
	var dr events.Drop
	var dropReasons *probe.EnumNames
	dropErr := errors.New("not asked for")
	if slices.Contains(t.opts.events, "drops") {
		dropReasons, dropErr = probe.DropReasons()
	}
	sources := []source{
		{"retrans", probe.LoadRetrans, func(raw []byte) error {
			if err := events.DecodeRetransmit(raw, clock, &rt); err != nil {
				return err
			}
			t.tracker.Retransmit(rt.Time, rt.Local, rt.Remote, uint64(rt.Segments), rt.State, rt.Kind == events.RetransSynAck)
			return nil
		}},
		{"resets", probe.LoadResets, func(raw []byte) error {
			if err := events.DecodeReset(raw, clock, reasons, &rs); err != nil {
				return err
			}
			t.tracker.ResetEvent(rs.Time, rs.Local, rs.Remote, rs.Direction == events.ResetSent)
			return nil
		}},
		{"states", probe.LoadStates, func(raw []byte) error {
			if err := events.DecodeStateChange(raw, clock, &sc); err != nil {
				return err
			}
			if sc.Kind == events.StateKindLifetime {
				t.tracker.Lifetime(sc.Time, sc.Local, sc.Remote, sc.OldState, sc.Lifetime, sc.FromStart,
					sc.BytesAcked, sc.BytesReceived, sc.TotalRetrans, sc.PID, sc.CommString())
			} else {
				t.tracker.StateChange(sc.Time, sc.Local, sc.Remote, sc.OldState, sc.NewState)
				if sc.HandshakeKnown {
					t.tracker.Handshake(sc.Handshake)
				}
			}
			return nil
		}},
		{"drops", func(o probe.SockTracerOptions) (*probe.SockTracer, error) {
			if dropReasons == nil {
				return nil, fmt.Errorf("drop reasons: %w", dropErr)
			}
			d, err := probe.LoadDrops(o, probe.DropsConfig{}, dropReasons)
			if err != nil {
				return nil, err
			}
			return d.SockTracer, nil
		}, func(raw []byte) error {
			if err := events.DecodeDrop(raw, clock, dropReasons, &dr); err != nil {
				return err
			}
			t.tracker.Drop(dr.Time, dr.Local, dr.Remote, dr.ReasonName)
			return nil
		}},
	}
	// Loading is mostly the verifier's work: the objects load side by
	// side, which shortens top's start on two CPUs. Tracefs is mounted
	// first, once, so that the loads do not race to mount it.
	type loaded struct {
		st  *sockTrace
		err error
	}
	if _, err := probe.EnsureTracefs(); err != nil {
		t.missing = append(t.missing, "none: "+err.Error())
		return
	}
	results := make([]loaded, len(sources))
	var wg sync.WaitGroup
	for i, s := range sources {
		if !slices.Contains(t.opts.events, topEventSources[i]) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := startSockTrace(&common{}, s.what, opts, s.load)
			results[i] = loaded{st, err}
		}()
	}
	wg.Wait()
	for i, s := range sources {
		r := results[i]
		switch {
		case r.err != nil:
			t.missing = append(t.missing, s.what+": "+r.err.Error())
		case r.st != nil:
			t.readers = append(t.readers, r.st)
			t.lostSeen = append(t.lostSeen, 0)
			t.wg.Add(1)
			go t.readEvents(r.st, s.what, s.handle)
		}
	}
}

// readEvents hands each record to handle under the lock until stopped.
func (t *topRun) readEvents(st *sockTrace, what string, handle func([]byte) error) {
	defer t.wg.Done()
	for {
		select {
		case <-t.stop:
			return
		default:
		}
		st.reader.SetDeadline(time.Now().Add(pollEvery))
		raw, err := st.reader.Next()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue
		}
		if err != nil {
			return
		}
		t.mu.Lock()
		err = handle(raw)
		t.mu.Unlock()
		if err != nil {
			fmt.Fprintf(t.env.Stderr, "tcplens top: %s: %v\n", what, err)
			return
		}
	}
}

func (t *topRun) stopEvents() {
	if t.stop != nil {
		close(t.stop)
	}
	t.wg.Wait()
	for _, r := range t.readers {
		r.Close()
	}
}
