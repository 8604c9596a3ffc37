package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/tcplens/tcplens/internal/events"
	"github.com/tcplens/tcplens/internal/output"
	"github.com/tcplens/tcplens/internal/probe"
)

func init() {
	register("resets", "TCP resets sent (with the kernel's reason) and received", runResets)
}

func runResets(ctx context.Context, env Env, args []string) error {
	fs, c, sf := sockCommandFlags("resets")
	countsEvents(fs)
	c.withoutInterval("resets prints each reset as it comes and has no periodic report")
	opts, err := parseSockTrace(fs, env, args, c, sf)
	if err != nil {
		return err
	}
	reasons, err := probe.ResetReasons()
	if err != nil {
		return err
	}
	st, err := startSockTrace(c, "resets", opts, probe.LoadResets)
	if err != nil {
		return err
	}
	defer st.Close()
	if c.format == output.Text {
		fmt.Fprintln(env.Stderr, "tcplens resets: streaming resets; Ctrl-C to stop")
	}

	r := &resetReport{w: env.Stdout, out: output.NewJSONLines(env.Stdout), format: c.format,
		clock: events.NewClock(), reasons: reasons, byReason: map[string]uint64{}}
	start := time.Now()
	loop := streamLoop{c: c, reader: st.reader, handle: st.streamed(r, jsonOut(c.format, r.out))}
	return st.finish(loop.run(ctx), r, start)
}

type resetReport struct {
	w       io.Writer
	out     *output.JSONLines
	format  output.Format
	clock   events.Clock
	reasons events.EnumNamer
	header  bool

	ev             events.Reset
	sent, received uint64
	byReason       map[string]uint64
}

// reasonName is the reason's BTF name, or its number when BTF has none.
func (r *resetReport) reasonName(ev *events.Reset) string {
	if ev.Direction != events.ResetSent {
		return ""
	}
	if ev.ReasonName != "" {
		return ev.ReasonName
	}
	return strconv.FormatUint(uint64(ev.Reason), 10)
}

func (r *resetReport) record(raw []byte) error {
	if err := events.DecodeReset(raw, r.clock, r.reasons, &r.ev); err != nil {
		return err
	}
	ev := &r.ev
	reason := r.reasonName(ev)
	if ev.Direction == events.ResetSent {
		r.sent++
		r.byReason[reason]++
	} else {
		r.received++
	}
	if r.format == output.JSON {
		return r.out.Emit(output.ResetRecord{Type: "reset", Time: timestamp(ev.Time), Conn: connRecord(ev.Local, ev.Remote),
			Direction: ev.DirectionName(), State: events.TCPStateName(ev.State), Reason: reason, PID: ev.PID})
	}
	if !r.header {
		fmt.Fprintf(r.w, "%-8s %-7s %-39s %-2s %-39s %-12s %s\n", "TIME", "PID", "LADDR:LPORT", "D>", "RADDR:RPORT", "STATE", "REASON")
		r.header = true
	}
	dir := "->" // sent to the remote end
	if ev.Direction == events.ResetReceived {
		dir = "<-"
		reason = "-"
	}
	_, err := fmt.Fprintf(r.w, "%-8s %-7d %-39s %-2s %-39s %-12s %s\n", clockTime(ev.Time), ev.PID,
		ev.Local, dir, ev.Remote, events.TCPStateName(ev.State), reason)
	return err
}

func (r *resetReport) summary(elapsed time.Duration, lost uint64) error {
	s := output.ResetSummary{Type: "summary", DurationSeconds: elapsed.Seconds(), Sent: r.sent, Received: r.received,
		Reasons: r.byReason, Lost: lost}
	if r.format == output.JSON {
		if err := r.out.Emit(s); err != nil {
			return err
		}
		return r.out.Flush()
	}
	_, err := fmt.Fprintf(r.w, "\nSummary: %.1fs: %d resets sent, %d received; %d records lost (ring buffer full)\n",
		s.DurationSeconds, s.Sent, s.Received, s.Lost)
	return err
}
