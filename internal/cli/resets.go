package cli

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/pflag"

	"github.com/tcplens/tcplens/internal/events"
	"github.com/tcplens/tcplens/internal/output"
	"github.com/tcplens/tcplens/internal/probe"
)

func init() { registerSock(&resetsCommand) }

var resetsCommand = sockCommand{
	object:     &probe.ResetsObject,
	summary:    "TCP resets sent (with the kernel's reason) and received",
	noInterval: "resets prints each reset as it comes and has no periodic report",
	flags: func(*pflag.FlagSet, *common) func(Env, *sockOut) (*sockRun, error) {
		return func(_ Env, o *sockOut) (*sockRun, error) {
			// Kernels before 6.10 have no enum sk_rst_reason and give no
			// reason: resets then come without one.
			var reasons events.EnumNamer
			if names, err := probe.ResetReasons(); err == nil {
				reasons = names
			} else if !errors.Is(err, probe.ErrUnsupported) {
				return nil, err
			}
			return &sockRun{report: newResetReport(o, reasons), banner: "streaming resets"}, nil
		}
	},
}

type resetReport struct {
	*sockOut
	reasons events.EnumNamer

	ev             events.Reset
	rec            output.ResetRecord
	sent, received uint64
	byReason       map[string]uint64
}

func newResetReport(o *sockOut, reasons events.EnumNamer) *resetReport {
	return &resetReport{sockOut: o, reasons: reasons, byReason: map[string]uint64{}}
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
	if r.json() {
		r.rec = output.ResetRecord{Type: "reset", Time: timestamp(ev.Time), Conn: r.conn(ev.Local, ev.Remote),
			Direction: ev.DirectionName(), State: events.TCPStateName(ev.State), Reason: reason, PID: ev.PID}
		return r.out.Emit(&r.rec)
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
	if r.json() {
		return r.emitSummary(&s)
	}
	_, err := fmt.Fprintf(r.w, "\nSummary: %.1fs: %s sent, %d received; %s\n",
		s.DurationSeconds, output.Plural(s.Sent, "reset"), s.Received, s.Loss.Text())
	return err
}
