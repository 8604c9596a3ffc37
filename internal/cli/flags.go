package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/tcplens/tcplens/internal/output"
	"github.com/tcplens/tcplens/internal/probe"
)

func init() {
	register("flags", "count TCP flags and suspicious flag combinations per interface; optionally drop SYNs to ports", runFlags)
}

func runFlags(ctx context.Context, env Env, args []string) error {
	fs := pflag.NewFlagSet("flags", pflag.ContinueOnError)
	var c common
	c.register(fs, time.Second)
	c.registerPacket(fs)
	c.registerDirection(fs, "in")
	var pf packetFilterFlags
	pf.register(fs, false)
	var dropPorts []uint
	fs.UintSliceVar(&dropPorts, "drop-syn-port", nil, "drop SYNs (without ACK) to `PORT` and count them (repeatable)")
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return err
	}
	ports, err := parsePorts("drop-syn-port", dropPorts)
	if err != nil {
		return err
	}
	filter, err := pf.program(nil)
	if err != nil {
		return err
	}

	pp, ctx, err := startPacketPath(ctx, env, "flags", &c, probe.PacketConfig{DropSYNPorts: ports, Filter: filter})
	if err != nil {
		return err
	}
	defer pp.Close()
	if c.format == output.Text {
		fmt.Fprintf(env.Stderr, "tcplens flags: watching %s; Ctrl-C to stop\n", describeAttachments(pp.Attachments()))
	}

	start := time.Now()
	views := counterViews(pp.Direction(), pp.Attachments())
	rep := newFlagsReporter(env, c.format, views)
	rep.since = start
	prev := make([]probe.FlagCounters, len(views))
	runErr := runPeriodic(ctx, &c, func(now time.Time) error {
		cur, err := readViewCounters(pp, views)
		if err != nil {
			return err
		}
		deltas := make([]probe.FlagCounters, len(cur))
		for i := range cur {
			deltas[i] = probe.SubCounters(cur[i], prev[i])
		}
		prev = cur
		return rep.report("interval", now, deltas)
	})

	// The summary is printed even after a runtime error: what was seen
	// until then is still true.
	final, err := readViewCounters(pp, views)
	if err != nil {
		return err
	}
	if err := rep.summary(time.Now(), time.Since(start), final); err != nil {
		return err
	}
	return packetRunError(ctx, runErr)
}

// flagsReporter prints flag counts as text tables or JSON lines.
type flagsReporter struct {
	env    Env
	format output.Format
	views  []counterView
	json   *output.JSONLines
	// since is when the current interval began; elapsed is the run's
	// length, for the summary. Both give records their duration_seconds.
	since   time.Time
	elapsed time.Duration
}

func newFlagsReporter(env Env, format output.Format, views []counterView) *flagsReporter {
	return &flagsReporter{env: env, format: format, views: views, json: output.NewJSONLines(env.Stdout), since: time.Now()}
}

// FlagsRecord builds the JSON record for one interface's counts in one
// direction ("in" or "out").
func FlagsRecord(kind string, now time.Time, d time.Duration, iface, dir, hook string, c probe.FlagCounters) output.FlagsRecord {
	return output.FlagsRecord{
		Type: kind, Time: timestamp(now), DurationSeconds: d.Seconds(), Interface: iface, Direction: dir, Hook: hook,
		Packets: c.Packets, TCPPackets: c.TcpPackets,
		Flags:     output.FlagCounts{FIN: c.Fin, SYN: c.Syn, RST: c.Rst, PSH: c.Psh, ACK: c.Ack, URG: c.Urg, ECE: c.Ece, CWR: c.Cwr},
		Anomalies: output.Anomalies{SynFin: c.SynFin, SynRst: c.SynRst, Null: c.NullFlags, Xmas: c.Xmas, Malformed: c.Malformed},
		Dropped:   c.Dropped,
	}
}

var flagsHeader = []string{"IFACE", "DIR", "PACKETS", "TCP", "FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR",
	"SYN+FIN", "SYN+RST", "NULL", "XMAS", "MALFORMED", "DROPPED"}

func (r *flagsReporter) report(kind string, now time.Time, counts []probe.FlagCounters) error {
	d := now.Sub(r.since) // an interval: since the previous report
	if kind == "summary" {
		d = r.elapsed
	} else {
		r.since = now
	}
	if r.format == output.JSON {
		for i, v := range r.views {
			if err := r.json.Emit(FlagsRecord(kind, now, d, v.iface, v.dir.String(), v.hook, counts[i])); err != nil {
				return err
			}
		}
		return r.json.Flush()
	}
	fmt.Fprintf(r.env.Stdout, "%s\n", now.Format("15:04:05.000"))
	writeFlagsTable(r.env.Stdout, r.views, counts)
	return nil
}

func (r *flagsReporter) summary(now time.Time, elapsed time.Duration, totals []probe.FlagCounters) error {
	if r.format == output.JSON {
		r.elapsed = elapsed
		return r.report("summary", now, totals)
	}
	fmt.Fprintf(r.env.Stdout, "\nSummary: %s since start; malformed frames and dropped SYNs are included in PACKETS\n", elapsed.Round(time.Millisecond))
	writeFlagsTable(r.env.Stdout, r.views, totals)
	return nil
}

func writeFlagsTable(w interface{ Write([]byte) (int, error) }, views []counterView, counts []probe.FlagCounters) {
	t := output.NewTable(w, flagsHeader...)
	for i, v := range views {
		c := counts[i]
		t.Row(v.iface, v.dir, c.Packets, c.TcpPackets, c.Fin, c.Syn, c.Rst, c.Psh, c.Ack, c.Urg, c.Ece, c.Cwr,
			c.SynFin, c.SynRst, c.NullFlags, c.Xmas, c.Malformed, c.Dropped)
	}
	t.Flush()
}
