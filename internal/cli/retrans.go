package cli

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"time"

	"github.com/tcplens/tcplens/internal/events"
	"github.com/tcplens/tcplens/internal/output"
	"github.com/tcplens/tcplens/internal/probe"
)

func init() {
	register("retrans", "TCP retransmissions: a stream of events, or counts per connection with --interval", runRetrans)
}

func runRetrans(ctx context.Context, env Env, args []string) error {
	fs, c, sf := sockCommandFlags("retrans")
	fs.Lookup("count").Usage = "exit after `N` events (with --interval: N reports)"
	fs.Lookup("interval").Usage = "count retransmitted segments per connection and report every `DURATION` instead of streaming events"
	opts, err := parseSockTrace(fs, env, args, c, sf)
	if err != nil {
		return err
	}
	st, err := startSockTrace(c, "retrans", opts, probe.LoadRetrans)
	if err != nil {
		return err
	}
	defer st.Close()

	r := newRetransReport(env.Stdout, c.format, events.NewClock(), fs.Changed("interval"))
	if c.format == output.Text {
		what := "streaming retransmissions"
		if r.intervals {
			what = "counting retransmitted segments per connection every " + c.interval.String()
		}
		fmt.Fprintf(env.Stderr, "tcplens retrans: %s; Ctrl-C to stop\n", what)
	}
	start := time.Now()
	loop := streamLoop{c: c, reader: st.reader, handle: func(raw []byte) (bool, error) {
		if err := r.record(raw); err != nil {
			return false, err
		}
		if r.format == output.JSON && !r.intervals {
			return true, st.flushWhenIdle(r.out)
		}
		return true, nil
	}}
	if r.intervals {
		loop.tick = func(now time.Time) error { return r.flushInterval(now) }
	}
	runErr := loop.run(ctx)
	if r.intervals && runErr == nil && len(r.conns) > 0 {
		// What arrived since the last tick, so the totals add up.
		runErr = r.flushInterval(time.Now())
	}
	return st.finish(runErr, r, start)
}

type connKey struct{ local, remote netip.AddrPort }

type retransCounts struct {
	segments, events, synacks, failed uint64
}

// retransReport prints retransmissions as they come, or counts them per
// connection and prints the counts every interval.
type retransReport struct {
	w         io.Writer
	out       *output.JSONLines
	format    output.Format
	clock     events.Clock
	intervals bool
	header    bool

	ev     events.Retransmit
	conns  map[connKey]*retransCounts
	totals retransCounts
}

func newRetransReport(w io.Writer, f output.Format, clock events.Clock, intervals bool) *retransReport {
	return &retransReport{w: w, out: output.NewJSONLines(w), format: f, clock: clock, intervals: intervals,
		conns: map[connKey]*retransCounts{}}
}

func (r *retransReport) record(raw []byte) error {
	if err := events.DecodeRetransmit(raw, r.clock, &r.ev); err != nil {
		return err
	}
	ev := &r.ev
	r.totals.add(ev)
	if r.intervals {
		k := connKey{ev.Local, ev.Remote}
		c := r.conns[k]
		if c == nil {
			c = &retransCounts{}
			r.conns[k] = c
		}
		c.add(ev)
		return nil
	}
	if r.format == output.JSON {
		return r.out.Emit(retransmitRecord(ev))
	}
	if !r.header {
		fmt.Fprintf(r.w, "%-8s %-7s %-39s %-2s %-39s %-12s %s\n", "TIME", "PID", "LADDR:LPORT", "T>", "RADDR:RPORT", "STATE", "SEGS")
		r.header = true
	}
	t := "R>"
	if ev.Kind == events.RetransSynAck {
		t = "S>"
	}
	segs := fmt.Sprint(ev.Segments)
	if ev.Err != 0 {
		segs = fmt.Sprintf("%d (err %d)", ev.Segments, ev.Err)
	}
	_, err := fmt.Fprintf(r.w, "%-8s %-7d %-39s %-2s %-39s %-12s %s\n", clockTime(ev.Time), ev.PID,
		ev.Local, t, ev.Remote, events.TCPStateName(ev.State), segs)
	return err
}

func (c *retransCounts) add(ev *events.Retransmit) {
	c.events++
	if ev.Kind == events.RetransSynAck {
		c.synacks++
	}
	c.segments += uint64(ev.Segments)
	if ev.Err != 0 {
		c.failed++
	}
}

func retransmitRecord(ev *events.Retransmit) output.RetransmitRecord {
	rec := output.RetransmitRecord{Type: "retransmit", Time: timestamp(ev.Time), Conn: connRecord(ev.Local, ev.Remote),
		PID: ev.PID, State: events.TCPStateName(ev.State), Kind: ev.KindName(),
		Segments: ev.Segments, SKBSegments: ev.SKBSegments, TotalRetrans: ev.TotalRetrans, Err: ev.Err}
	return rec
}

func connRecord(local, remote netip.AddrPort) output.Conn {
	return output.Conn{LAddr: local.Addr().String(), LPort: local.Port(), RAddr: remote.Addr().String(), RPort: remote.Port()}
}

// flushInterval prints the interval's counts, busiest connection first,
// and starts the next interval.
func (r *retransReport) flushInterval(now time.Time) error {
	keys := make([]connKey, 0, len(r.conns))
	for k := range r.conns {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := r.conns[keys[i]], r.conns[keys[j]]
		if a.segments != b.segments {
			return a.segments > b.segments
		}
		if c := keys[i].local.Compare(keys[j].local); c != 0 {
			return c < 0
		}
		return keys[i].remote.Compare(keys[j].remote) < 0
	})
	if r.format == output.JSON {
		ts := timestamp(now)
		for _, k := range keys {
			c := r.conns[k]
			if err := r.out.Emit(output.RetransmitsRecord{Type: "retransmits", Time: ts, Conn: connRecord(k.local, k.remote),
				Count: c.segments, Retransmits: c.events, SynAcks: c.synacks, Failed: c.failed}); err != nil {
				return err
			}
		}
		clear(r.conns)
		return r.out.Flush()
	}
	fmt.Fprintf(r.w, "%s: %d connections retransmitted\n", clockTime(now), len(keys))
	if len(keys) > 0 {
		t := output.NewTextTable(r.w, "LADDR:LPORT", "RADDR:RPORT", "SEGMENTS", "RETRANSMITS", "FAILED")
		for _, k := range keys {
			c := r.conns[k]
			t.Row(k.local, k.remote, c.segments, c.events, c.failed)
		}
		if err := t.Flush(); err != nil {
			return err
		}
	}
	clear(r.conns)
	return nil
}

func (r *retransReport) summary(elapsed time.Duration, lost uint64) error {
	s := output.RetransSummary{Type: "summary", DurationSeconds: elapsed.Seconds(), Retransmits: r.totals.events,
		Segments: r.totals.segments, SynAcks: r.totals.synacks, Failed: r.totals.failed, Lost: lost}
	if r.format == output.JSON {
		if err := r.out.Emit(s); err != nil {
			return err
		}
		return r.out.Flush()
	}
	_, err := fmt.Fprintf(r.w, "\nSummary: %.1fs: %d retransmissions (%d SYN-ACK), %d segments; %d failed to send; %d records lost (ring buffer full)\n",
		s.DurationSeconds, s.Retransmits, s.SynAcks, s.Segments, s.Failed, s.Lost)
	return err
}
