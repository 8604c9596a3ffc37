package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/tcplens/tcplens/internal/events"
	"github.com/tcplens/tcplens/internal/output"
	"github.com/tcplens/tcplens/internal/probe"
)

func init() {
	register("states", "TCP state transitions with time in state and handshake latency, and connection lifetimes", runStates)
}

func runStates(ctx context.Context, env Env, args []string) error {
	fs, c, sf := sockCommandFlags("states")
	countsEvents(fs)
	c.withoutInterval("states prints each transition and lifetime as it comes and has no periodic report")
	opts, err := parseSockTrace(fs, env, args, c, sf)
	if err != nil {
		return err
	}
	st, err := startSockTrace(c, "states", opts, probe.LoadStates)
	if err != nil {
		return err
	}
	defer st.Close()

	r := newStatesReport(env.Stdout, c.format, events.NewClock())
	if c.format == output.Text {
		fmt.Fprintln(env.Stderr, "tcplens states: streaming TCP state transitions and lifetimes; Ctrl-C to stop")
	}
	start := time.Now()
	loop := streamLoop{c: c, reader: st.reader, handle: st.streamed(r, jsonOut(c.format, r.out))}
	return st.finish(loop.run(ctx), r, start)
}

// statesReport prints transitions and lifetimes as they come.
type statesReport struct {
	w      io.Writer
	out    *output.JSONLines
	format output.Format
	clock  events.Clock
	header bool

	ev     events.StateChange
	totals output.StatesSummary
	// Storage the JSON records point into, reused for every record.
	pid                     uint32
	comm                    string
	durationUS, handshakeUS float64
}

func newStatesReport(w io.Writer, f output.Format, clock events.Clock) *statesReport {
	return &statesReport{w: w, out: output.NewJSONLines(w), format: f, clock: clock}
}

func (r *statesReport) record(raw []byte) error {
	if err := events.DecodeStateChange(raw, r.clock, &r.ev); err != nil {
		return err
	}
	ev := &r.ev
	if ev.Kind == events.StateKindLifetime {
		r.totals.Lifetimes++
	} else {
		r.totals.Transitions++
		if ev.HandshakeKnown {
			r.totals.Handshakes++
		}
	}
	if r.format == output.JSON {
		if ev.Kind == events.StateKindLifetime {
			return r.out.Emit(r.lifetimeRecord(ev))
		}
		return r.out.Emit(r.stateRecord(ev))
	}
	return r.text(ev)
}

func (r *statesReport) owner(ev *events.StateChange) (*uint32, *string) {
	if ev.PID == 0 {
		return nil, nil
	}
	r.pid, r.comm = ev.PID, ev.CommString()
	return &r.pid, &r.comm
}

func micros(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

func (r *statesReport) stateRecord(ev *events.StateChange) output.StateRecord {
	rec := output.StateRecord{Type: "state", Time: timestamp(ev.Time), Conn: connRecord(ev.Local, ev.Remote),
		OldState: events.TCPStateName(ev.OldState), NewState: events.TCPStateName(ev.NewState)}
	rec.PID, rec.Comm = r.owner(ev)
	if ev.DurationKnown {
		r.durationUS = micros(ev.Duration)
		rec.DurationUS = &r.durationUS
	}
	if ev.HandshakeKnown {
		r.handshakeUS = micros(ev.Handshake)
		rec.HandshakeUS = &r.handshakeUS
	}
	return rec
}

func (r *statesReport) lifetimeRecord(ev *events.StateChange) output.LifetimeRecord {
	rec := output.LifetimeRecord{Type: "lifetime", Time: timestamp(ev.Time), Conn: connRecord(ev.Local, ev.Remote),
		DurationUS: micros(ev.Lifetime), FromStart: ev.FromStart, LastState: events.TCPStateName(ev.OldState),
		BytesAcked: ev.BytesAcked, BytesReceived: ev.BytesReceived, TotalRetrans: ev.TotalRetrans}
	rec.PID, rec.Comm = r.owner(ev)
	return rec
}

// millis formats a duration as BCC's tools do (milliseconds, 3 decimals).
func millis(d time.Duration) string { return fmt.Sprintf("%.3f", float64(d.Nanoseconds())/1e6) }

func (r *statesReport) text(ev *events.StateChange) error {
	if !r.header {
		fmt.Fprintf(r.w, "%-8s %-7s %-15s %-39s %-39s %s\n", "TIME", "PID", "COMM", "LADDR:LPORT", "RADDR:RPORT", "EVENT")
		r.header = true
	}
	pid, comm := "-", "-"
	if ev.PID != 0 {
		pid, comm = fmt.Sprint(ev.PID), ev.CommString()
	}
	prefix := fmt.Sprintf("%-8s %-7s %-15s %-39s %-39s ", clockTime(ev.Time), pid, comm, ev.Local, ev.Remote)
	var what string
	if ev.Kind == events.StateKindLifetime {
		life := millis(ev.Lifetime) + "ms"
		if !ev.FromStart {
			life = ">" + life // began before tcplens saw it
		}
		what = fmt.Sprintf("LIFETIME %s from %s tx=%dB rx=%dB retrans=%d", life,
			events.TCPStateName(ev.OldState), ev.BytesAcked, ev.BytesReceived, ev.TotalRetrans)
	} else {
		in := "?"
		if ev.DurationKnown {
			in = millis(ev.Duration) + "ms"
		}
		what = fmt.Sprintf("%s -> %s after %s", events.TCPStateName(ev.OldState), events.TCPStateName(ev.NewState), in)
		if ev.HandshakeKnown {
			what += " handshake=" + millis(ev.Handshake) + "ms"
		}
	}
	_, err := fmt.Fprintln(r.w, prefix+what)
	return err
}

func (r *statesReport) summary(elapsed time.Duration, lost uint64) error {
	s := r.totals
	s.Type, s.DurationSeconds, s.Lost = "summary", elapsed.Seconds(), lost
	if r.format == output.JSON {
		if err := r.out.Emit(s); err != nil {
			return err
		}
		return r.out.Flush()
	}
	_, err := fmt.Fprintf(r.w, "\nSummary: %.1fs: %d transitions (%d handshakes), %d lifetimes; %d records lost (ring buffer full)\n",
		s.DurationSeconds, s.Transitions, s.Handshakes, s.Lifetimes, s.Lost)
	return err
}
