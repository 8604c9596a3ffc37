package cli

import (
	"fmt"
	"net/netip"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/tcplens/tcplens/internal/conn"
	"github.com/tcplens/tcplens/internal/events"
	"github.com/tcplens/tcplens/internal/output"
	"github.com/tcplens/tcplens/internal/probe"
)

func init() { registerSock(&retransCommand) }

var retransCommand = sockCommand{
	object:  &probe.RetransObject,
	summary: "TCP retransmissions: a stream of events, or counts per connection with --interval",
	flags: func(fs *pflag.FlagSet, c *common) func(Env, *sockOut) (*sockRun, error) {
		fs.Lookup("count").Usage = "exit after `N` events (with --interval: N reports)"
		fs.Lookup("interval").Usage = "count retransmitted segments per connection and report every `DURATION` instead of streaming events"
		return func(_ Env, o *sockOut) (*sockRun, error) {
			r := newRetransReport(o, fs.Changed("interval"))
			run := &sockRun{report: r, banner: "streaming retransmissions"}
			if r.intervals {
				run.banner = "counting retransmitted segments per connection every " + c.interval.String()
				run.tick = r.flushInterval
				run.final = func(now time.Time) error {
					if r.conns.Len() == 0 {
						return nil
					}
					// What arrived since the last tick, so the totals add up.
					return r.flushInterval(now)
				}
			}
			return run, nil
		}
	},
}

// retransReport prints retransmissions as they come, or counts them per
// connection and prints the counts every interval.
type retransReport struct {
	*sockOut
	intervals bool

	ev     events.Retransmit
	rec    output.RetransmitRecord
	conns  *conn.RetransTally // per connection, with --interval
	totals conn.RetransCounts
}

func newRetransReport(o *sockOut, intervals bool) *retransReport {
	return &retransReport{sockOut: o, intervals: intervals, conns: conn.NewRetransTally(0)}
}

func (r *retransReport) record(raw []byte) error {
	if err := events.DecodeRetransmit(raw, r.clock, &r.ev); err != nil {
		return err
	}
	ev := &r.ev
	synack, failed := ev.Kind == events.RetransSynAck, ev.Err != 0
	r.totals.Add(uint64(ev.Segments), synack, failed)
	if r.intervals {
		r.conns.Add(ev.Local, ev.Remote, uint64(ev.Segments), synack, failed)
		return nil
	}
	if r.json() {
		r.rec = r.retransmitRecord(ev)
		return r.out.Emit(&r.rec) // a field, so that the interface does not allocate
	}
	if r.table == nil {
		r.table = r.style.table(r.w,
			output.Column{Name: "PID", Width: 7, Right: true},
			output.Column{Name: "COMM", Width: 15},
			r.style.addrCol("LADDR:LPORT"),
			output.Column{Name: "T>"},
			r.style.addrCol("RADDR:RPORT"),
			output.Column{Name: "STATE", Width: 11},
			output.Column{Name: "SEGS", Width: 4, Right: true},
			output.Column{Name: "SKB_SEGS", Right: true, Wide: true},
			output.Column{Name: "TOTAL_RETRANS", Right: true, Wide: true},
			output.Column{Name: "ERR"})
	}
	t := "R>"
	if ev.Kind == events.RetransSynAck {
		t = "S>"
	}
	errName := "-"
	if ev.Err != 0 {
		errName = sendErrName(ev.Err)
	}
	return r.table.Row(ev.Time, strconv.FormatUint(uint64(ev.PID), 10), ev.CommString(),
		ev.Local.String(), t, ev.Remote.String(), events.TCPStateName(ev.State),
		strconv.FormatUint(uint64(ev.Segments), 10), strconv.FormatUint(uint64(ev.SKBSegments), 10),
		strconv.FormatUint(uint64(ev.TotalRetrans), 10), errName)
}

// sendErrName names what a retransmission's send failed with: a negative
// errno by its name (EBUSY), a positive qdisc verdict by its NET_XMIT_
// name; a number the kernel may add later stays a number.
func sendErrName(err int32) string {
	switch {
	case err < 0:
		if name := unix.ErrnoName(syscall.Errno(-err)); name != "" {
			return name
		}
	case err == 1:
		return "NET_XMIT_DROP"
	case err == 2:
		return "NET_XMIT_CN"
	}
	return strconv.FormatInt(int64(err), 10)
}

func (r *retransReport) retransmitRecord(ev *events.Retransmit) output.RetransmitRecord {
	rec := output.RetransmitRecord{Type: "retransmit", Time: timestamp(ev.Time), Conn: r.conn(ev.Local, ev.Remote),
		PID: ev.PID, Comm: r.commName(ev.Comm[:]), State: events.TCPStateName(ev.State), Kind: ev.KindName(),
		Segments: ev.Segments, SKBSegments: ev.SKBSegments, TotalRetrans: ev.TotalRetrans, Err: ev.Err}
	if ev.Err != 0 {
		rec.ErrName = sendErrName(ev.Err)
	}
	return rec
}

func connRecord(local, remote netip.AddrPort) output.Conn {
	return output.Conn{LAddr: local.Addr().String(), LPort: local.Port(), RAddr: remote.Addr().String(), RPort: remote.Port()}
}

// flushInterval prints the interval's counts, busiest connection first,
// and starts the next interval.
func (r *retransReport) flushInterval(now time.Time) error {
	conns := r.conns.Drain()
	if r.json() {
		ts := timestamp(now)
		for _, c := range conns {
			if err := r.out.Emit(&output.RetransmitsRecord{Type: "retransmits", Time: ts, Conn: connRecord(c.Local, c.Remote),
				Segments: c.Segments, Retransmits: c.Events, SynAcks: c.SynAcks, Failed: c.Failed}); err != nil {
				return err
			}
		}
		return r.out.Flush()
	}
	fmt.Fprintf(r.w, "%s%s retransmitted\n", r.style.prefix(now), output.Plural(uint64(len(conns)), "connection"))
	if len(conns) > 0 {
		t := output.NewTextTable(r.w, "LADDR:LPORT", "RADDR:RPORT", "SEGMENTS", "RETRANSMITS", "FAILED")
		for _, c := range conns {
			t.Row(c.Local, c.Remote, c.Segments, c.Events, c.Failed)
		}
		if err := t.Flush(); err != nil {
			return err
		}
	}
	return nil
}

func (r *retransReport) summary(elapsed time.Duration, loss output.Loss) error {
	s := output.RetransSummary{Type: "summary", DurationSeconds: elapsed.Seconds(), Retransmits: r.totals.Events,
		Segments: r.totals.Segments, SynAcks: r.totals.SynAcks, Failed: r.totals.Failed, Loss: loss}
	if r.json() {
		return r.emitSummary(&s)
	}
	_, err := fmt.Fprintf(r.w, "\nSummary: %.1fs: %s (%d SYN-ACK), %s; %d failed to send; %s\n",
		s.DurationSeconds, output.Plural(s.Retransmits, "retransmission"), s.SynAcks, output.Plural(s.Segments, "segment"),
		s.Failed, s.Loss.Text())
	return err
}
