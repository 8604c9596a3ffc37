package cli

import (
	"context"
	"errors"
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
	// Kernels before 6.10 have no enum sk_rst_reason and give no reason:
	// resets then come without one.
	var reasons events.EnumNamer
	if names, err := probe.ResetReasons(); err == nil {
		reasons = names
	} else if !errors.Is(err, probe.ErrUnsupported) {
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
	if r.style, err = sf.textStyle(); err != nil {
		return err
	}
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
	style   textStyle
	table   *output.ConnTable

	ev             events.Reset
	sent, received uint64
	byReason       map[string]uint64
}

// reasonName is the reason's BTF name, or its number when BTF has none,
// or "" when the kernel gave none.
func (r *resetReport) reasonName(ev *events.Reset) string {
	if ev.Direction != events.ResetSent || !ev.ReasonKnown {
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
		if reason != "" {
			r.byReason[reason]++
		}
	} else {
		r.received++
	}
	if r.format == output.JSON {
		return r.out.Emit(&output.ResetRecord{Type: "reset", Time: timestamp(ev.Time), Conn: connRecord(ev.Local, ev.Remote),
			Direction: ev.DirectionName(), State: events.TCPStateName(ev.State), Reason: reason, PID: ev.PID})
	}
	if r.table == nil {
		r.table = r.style.table(r.w,
			output.Column{Name: "PID", Width: 7, Right: true},
			r.style.addrCol("LADDR:LPORT"),
			output.Column{Name: "D>"},
			r.style.addrCol("RADDR:RPORT"),
			output.Column{Name: "STATE", Width: 11},
			output.Column{Name: "REASON"})
	}
	dir := "->" // sent to the remote end
	if ev.Direction == events.ResetReceived {
		dir = "<-"
	}
	if reason == "" {
		reason = "-"
	}
	return r.table.Row(ev.Time, strconv.FormatUint(uint64(ev.PID), 10), ev.Local.String(), dir, ev.Remote.String(),
		events.TCPStateName(ev.State), reason)
}

func (r *resetReport) summary(elapsed time.Duration, loss output.Loss) error {
	s := output.ResetSummary{Type: "summary", DurationSeconds: elapsed.Seconds(), Sent: r.sent, Received: r.received,
		Reasons: r.byReason, Loss: loss}
	if r.format == output.JSON {
		if err := r.out.Emit(&s); err != nil {
			return err
		}
		return r.out.Flush()
	}
	_, err := fmt.Fprintf(r.w, "\nSummary: %.1fs: %s sent, %d received; %s\n",
		s.DurationSeconds, output.Plural(s.Sent, "reset"), s.Received, s.Loss.Text())
	return err
}
