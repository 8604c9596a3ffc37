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
	register("drops", "TCP packets the kernel drops, with its drop reason", runDrops)
}

func runDrops(ctx context.Context, env Env, args []string) error {
	fs, c, sf := sockCommandFlags("drops")
	countsEvents(fs)
	c.withoutInterval("drops prints each drop as it comes and has no periodic report")
	var skipNames []string
	fs.StringArrayVar(&skipNames, "skip-reason", nil, "do not report drops for `REASON` (as printed, e.g. NOT_SPECIFIED; repeatable)")
	opts, err := parseSockTrace(fs, env, args, c, sf)
	if err != nil {
		return err
	}
	reasons, err := probe.DropReasons()
	if err != nil {
		return err
	}
	var cfg probe.DropsConfig
	for _, name := range skipNames {
		v, err := probe.LookupDropReason(reasons, name)
		if err != nil {
			return usagef("--skip-reason: %v", err)
		}
		cfg.SkipReasons = append(cfg.SkipReasons, v)
	}
	st, err := startSockTrace(c, "drops", opts, func(o probe.SockTracerOptions) (*probe.SockTracer, error) {
		return probe.LoadDrops(o, cfg, reasons)
	})
	if err != nil {
		return err
	}
	defer st.Close()
	if c.format == output.Text {
		fmt.Fprintln(env.Stderr, "tcplens drops: streaming dropped TCP packets; Ctrl-C to stop")
	}

	r := &dropReport{w: env.Stdout, out: output.NewJSONLines(env.Stdout), format: c.format,
		clock: events.NewClock(), reasons: reasons, byReason: map[string]uint64{}}
	if r.style, err = sf.textStyle(); err != nil {
		return err
	}
	start := time.Now()
	loop := streamLoop{c: c, reader: st.reader, handle: st.streamed(r, jsonOut(c.format, r.out))}
	return st.finish(loop.run(ctx), r, start)
}

type dropReport struct {
	w       io.Writer
	out     *output.JSONLines
	format  output.Format
	clock   events.Clock
	reasons events.EnumNamer
	style   textStyle
	table   *output.ConnTable

	ev       events.Drop
	flagBuf  [8]byte
	drops    uint64
	byReason map[string]uint64
}

func (r *dropReport) record(raw []byte) error {
	if err := events.DecodeDrop(raw, r.clock, r.reasons, &r.ev); err != nil {
		return err
	}
	ev := &r.ev
	reason := ev.ReasonName
	if reason == "" {
		reason = strconv.FormatUint(uint64(ev.Reason), 10)
	}
	r.drops++
	r.byReason[reason]++
	flags := string(events.TCPFlagString(ev.TCPFlags, r.flagBuf[:]))
	if r.format == output.JSON {
		return r.out.Emit(output.DropRecord{Type: "drop", Time: timestamp(ev.Time), Conn: connRecord(ev.Local, ev.Remote),
			Direction: ev.DirectionName(), Reason: reason, Flags: flags,
			Location: "0x" + strconv.FormatUint(ev.Location, 16), PID: ev.PID})
	}
	if r.table == nil {
		r.table = r.style.table(r.w,
			output.Column{Name: "PID", Width: 7, Right: true},
			r.style.addrCol("LADDR:LPORT"),
			output.Column{Name: "D>"},
			r.style.addrCol("RADDR:RPORT"),
			output.Column{Name: "FLAGS", Width: 6},
			output.Column{Name: "LOCATION", Wide: true},
			output.Column{Name: "REASON"})
	}
	dir := "<-" // arrived from the remote end
	if ev.Direction == events.DropOut {
		dir = "->"
	}
	return r.table.Row(ev.Time, strconv.FormatUint(uint64(ev.PID), 10), ev.Local.String(), dir, ev.Remote.String(),
		flags, "0x"+strconv.FormatUint(ev.Location, 16), reason)
}

func (r *dropReport) summary(elapsed time.Duration, lost uint64) error {
	s := output.DropSummary{Type: "summary", DurationSeconds: elapsed.Seconds(), Drops: r.drops, Reasons: r.byReason, Lost: lost}
	if r.format == output.JSON {
		if err := r.out.Emit(s); err != nil {
			return err
		}
		return r.out.Flush()
	}
	_, err := fmt.Fprintf(r.w, "\nSummary: %.1fs: %s dropped; %s lost\n",
		s.DurationSeconds, output.Plural(s.Drops, "TCP packet"), output.Plural(s.Lost, "record"))
	return err
}
