package cli

import (
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/pflag"

	"github.com/tcplens/tcplens/internal/events"
	"github.com/tcplens/tcplens/internal/output"
	"github.com/tcplens/tcplens/internal/probe"
)

func init() { registerSock(&statesCommand) }

var statesCommand = sockCommand{
	object:     &probe.StatesObject,
	summary:    "TCP state transitions with time in state and handshake latency, and connection lifetimes",
	noInterval: "states prints each transition and lifetime as it comes and has no periodic report",
	flags: func(fs *pflag.FlagSet, _ *common) func(Env, *sockOut) (*sockRun, error) {
		lifetimes := fs.Bool("lifetimes", false, "print only connection lifetimes (one line per closed connection, like tcplife); -c counts them")
		return func(env Env, o *sockOut) (*sockRun, error) {
			r := newStatesReport(o)
			r.lifetimesOnly = *lifetimes
			run := &sockRun{report: r, banner: "streaming TCP state transitions and lifetimes",
				started: func(st *sockTrace) error {
					if st.tracer != nil && len(st.tracer.Without) > 0 {
						fmt.Fprintf(env.Stderr, "tcplens states: this kernel has no %s tracepoint: accepted connections show no owner\n",
							st.tracer.Without[0])
					}
					return nil
				}}
			if r.lifetimesOnly {
				run.banner = "streaming connection lifetimes"
				// Only what is printed counts towards --count.
				run.counts = func() bool { return r.ev.Kind == events.StateKindLifetime }
			}
			return run, nil
		}
	},
}

// statesReport prints transitions and lifetimes as they come.
type statesReport struct {
	*sockOut
	// lifetimesOnly (--lifetimes) prints lifetimes alone, like tcplife;
	// the summary still counts transitions.
	lifetimesOnly bool

	ev       events.StateChange
	state    output.StateRecord
	lifetime output.LifetimeRecord
	totals   output.StatesSummary
	// Storage the JSON records point into, reused for every record.
	pid                     uint32
	comm                    string
	durationUS, handshakeUS float64
}

func newStatesReport(o *sockOut) *statesReport { return &statesReport{sockOut: o} }

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
	if r.lifetimesOnly && ev.Kind != events.StateKindLifetime {
		return nil
	}
	if r.json() {
		if ev.Kind == events.StateKindLifetime {
			r.lifetime = r.lifetimeRecord(ev)
			return r.out.Emit(&r.lifetime) // fields, so that the interface does not allocate
		}
		r.state = r.stateRecord(ev)
		return r.out.Emit(&r.state)
	}
	return r.text(ev)
}

func (r *statesReport) owner(ev *events.StateChange) (*uint32, *string) {
	if ev.PID == 0 {
		return nil, nil
	}
	r.pid, r.comm = ev.PID, r.commName(ev.Comm[:])
	return &r.pid, &r.comm
}

func micros(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

func (r *statesReport) stateRecord(ev *events.StateChange) output.StateRecord {
	rec := output.StateRecord{Type: "state", Time: timestamp(ev.Time), Conn: r.conn(ev.Local, ev.Remote),
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
	rec := output.LifetimeRecord{Type: "lifetime", Time: timestamp(ev.Time), Conn: r.conn(ev.Local, ev.Remote),
		DurationUS: micros(ev.Lifetime), FromStart: ev.FromStart, LastState: events.TCPStateName(ev.OldState),
		BytesAcked: ev.BytesAcked, BytesReceived: ev.BytesReceived, TotalRetrans: ev.TotalRetrans}
	rec.PID, rec.Comm = r.owner(ev)
	return rec
}

func (r *statesReport) text(ev *events.StateChange) error {
	pid, comm := "-", "-"
	if ev.PID != 0 {
		pid, comm = strconv.FormatUint(uint64(ev.PID), 10), ev.CommString()
	}
	if r.lifetimesOnly {
		return r.lifetimeText(ev, pid, comm)
	}
	if r.table == nil {
		r.table = r.style.table(r.w,
			output.Column{Name: "PID", Width: 7, Right: true},
			output.Column{Name: "COMM", Width: 8},
			r.style.addrCol("LADDR:LPORT"),
			r.style.addrCol("RADDR:RPORT"),
			output.Column{Name: "EVENT", Width: 23},
			output.Column{Name: "IN", Width: 8, Right: true},
			output.Column{Name: "DETAIL"})
	}
	var event, in, detail string
	if ev.Kind == events.StateKindLifetime {
		event, in = "LIFETIME", lifetimeText(ev)
		detail = fmt.Sprintf("tx %s, rx %s, %s, from %s", output.Bytes(ev.BytesAcked), output.Bytes(ev.BytesReceived),
			output.Plural(uint64(ev.TotalRetrans), "retransmit"), events.TCPStateName(ev.OldState))
	} else {
		// IN is the time spent in the old state.
		event, in = events.TCPStateName(ev.OldState)+"->"+events.TCPStateName(ev.NewState), "?"
		if ev.DurationKnown {
			in = output.Duration(ev.Duration)
		}
		// For SYN_SENT/SYN_RECV -> ESTABLISHED, IN is the handshake
		// latency (both count from the SYN state's start); --wide and
		// JSON give it separately, so the default row fits 120 columns.
		if ev.HandshakeKnown && r.style.wide {
			detail = "handshake " + output.Duration(ev.Handshake)
		}
	}
	return r.table.Row(ev.Time, pid, comm, ev.Local.String(), ev.Remote.String(), event, in, detail)
}

// lifetimeText is a connection's lifetime for a person; ">" marks one
// that began before tcplens saw it, so it lived at least that long.
func lifetimeText(ev *events.StateChange) string {
	life := output.Duration(ev.Lifetime)
	if !ev.FromStart {
		life = ">" + life
	}
	return life
}

// lifetimeText prints --lifetimes rows, as BCC's tcplife does.
func (r *statesReport) lifetimeText(ev *events.StateChange, pid, comm string) error {
	if r.table == nil {
		r.table = r.style.table(r.w,
			output.Column{Name: "PID", Width: 7, Right: true},
			output.Column{Name: "COMM", Width: 8},
			r.style.addrCol("LADDR:LPORT"),
			r.style.addrCol("RADDR:RPORT"),
			output.Column{Name: "TX", Width: 10, Right: true},
			output.Column{Name: "RX", Width: 10, Right: true},
			output.Column{Name: "TX_BYTES", Width: 12, Right: true, Wide: true},
			output.Column{Name: "RX_BYTES", Width: 12, Right: true, Wide: true},
			output.Column{Name: "RETRANS", Right: true},
			output.Column{Name: "LAST_STATE", Width: 11, Wide: true},
			output.Column{Name: "LIFETIME", Width: 9, Right: true})
	}
	return r.table.Row(ev.Time, pid, comm, ev.Local.String(), ev.Remote.String(),
		output.Bytes(ev.BytesAcked), output.Bytes(ev.BytesReceived),
		strconv.FormatUint(ev.BytesAcked, 10), strconv.FormatUint(ev.BytesReceived, 10),
		strconv.FormatUint(uint64(ev.TotalRetrans), 10), events.TCPStateName(ev.OldState), lifetimeText(ev))
}

func (r *statesReport) summary(elapsed time.Duration, loss output.Loss) error {
	s := r.totals
	s.Type, s.DurationSeconds, s.Loss = "summary", elapsed.Seconds(), loss
	if r.json() {
		return r.emitSummary(&s)
	}
	_, err := fmt.Fprintf(r.w, "\nSummary: %.1fs: %s (%s), %s; %s\n",
		s.DurationSeconds, output.Plural(s.Transitions, "transition"), output.Plural(s.Handshakes, "handshake"),
		output.Plural(s.Lifetimes, "lifetime"), s.Loss.Text())
	return err
}
