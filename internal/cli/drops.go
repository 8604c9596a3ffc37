package cli

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/tcplens/tcplens/internal/events"
	"github.com/tcplens/tcplens/internal/ksym"
	"github.com/tcplens/tcplens/internal/netstat"
	"github.com/tcplens/tcplens/internal/output"
	"github.com/tcplens/tcplens/internal/probe"
)

func init() { registerSock(&dropsCommand) }

var dropsCommand = sockCommand{
	object:     &probe.DropsObject,
	summary:    "TCP packets the kernel drops, with its drop reason",
	noInterval: "drops prints each drop as it comes and has no periodic report",
	flags: func(fs *pflag.FlagSet, _ *common) func(Env, *sockOut) (*sockRun, error) {
		var skipNames []string
		fs.StringArrayVar(&skipNames, "skip-reason", nil, "do not report drops for `REASON` (as printed, e.g. NOT_SPECIFIED; repeatable)")
		var withStack bool
		fs.BoolVar(&withStack, "stack", false, "show the kernel stack of each drop")
		return func(env Env, o *sockOut) (*sockRun, error) {
			reasons, err := probe.DropReasons()
			if err != nil {
				return nil, err
			}
			cfg := probe.DropsConfig{Stack: withStack}
			for _, name := range skipNames {
				v, err := probe.LookupDropReason(reasons, name)
				if err != nil {
					return nil, usagef("--skip-reason: %v", err)
				}
				cfg.SkipReasons = append(cfg.SkipReasons, v)
			}
			listenStart, err := netstat.ReadListen()
			if err != nil {
				return nil, err
			}
			// Symbols are read once, while the kernel's BTF is read and the
			// programs load (reading /proc/kallsyms is slow on slow
			// machines); records wait in the ring buffer until they are
			// there.
			type loaded struct {
				syms *ksym.Table
				err  error
			}
			symsc := make(chan loaded, 1)
			go func() {
				t, err := ksym.Load()
				symsc <- loaded{t, err}
			}()
			r := newDropReport(o, reasons)
			r.listenStart, r.readListen = listenStart, netstat.ReadListen
			return &sockRun{report: r, banner: "streaming dropped TCP packets",
				load: func(opts probe.SockTracerOptions) (*probe.SockTracer, error) {
					d, err := probe.LoadDrops(opts, cfg, reasons)
					if err != nil {
						return nil, err
					}
					if withStack {
						r.stack, r.stacksLost = d.Stack, d.StacksLost
					}
					return d.SockTracer, nil
				},
				started: func(*sockTrace) error {
					ls := <-symsc
					if ls.err != nil { // kptr_restrict: locations stay addresses
						fmt.Fprintf(env.Stderr, "tcplens drops: locations are shown as addresses: %v\n", ls.err)
					}
					r.syms = ls.syms
					return nil
				}}, nil
		}
	},
}

type dropReport struct {
	*sockOut
	reasons events.EnumNamer
	syms    *ksym.Table // nil: addresses only

	// stack reads a stack id's frames and stacksLost the drops whose stack
	// was not stored; both nil without --stack.
	stack      func(id int32, buf []uint64) ([]uint64, error)
	stacksLost func() (uint64, error)
	// symbolized stacks by id: the kernel never gives an id to another
	// stack (bpf/drops.c), so each is read and named once.
	stackNames map[int32][]string
	frames     []uint64

	// The namespace's listen-queue counters at start, and how to read them
	// at the end.
	listenStart netstat.Listen
	readListen  func() (netstat.Listen, error)

	ev       events.Drop
	rec      output.DropRecord
	flagBuf  [8]byte
	nameBuf  []byte
	drops    uint64
	byReason map[string]uint64
}

func newDropReport(o *sockOut, reasons events.EnumNamer) *dropReport {
	return &dropReport{sockOut: o, reasons: reasons, byReason: map[string]uint64{}}
}

// stackOf names the frames of the record's stack; nil without --stack or
// when the kernel could not store it (counted in stacks_lost).
func (r *dropReport) stackOf(id int32) ([]string, error) {
	if r.stack == nil || id < 0 {
		return nil, nil
	}
	if names, ok := r.stackNames[id]; ok {
		return names, nil
	}
	var err error
	r.frames, err = r.stack(id, r.frames[:0])
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(r.frames))
	for _, pc := range r.frames {
		name := r.syms.Name(pc)
		if len(names) == 0 && isTracingFrame(name) {
			continue
		}
		names = append(names, name)
	}
	if r.stackNames == nil {
		r.stackNames = map[int32][]string{}
	}
	r.stackNames[id] = names
	return names, nil
}

// isTracingFrame says whether a stack's frame is the tracing machinery
// above the dropping code: the program itself ("bpf_prog_..._kfree_skb
// [bpf]") and the kernel's raw tracepoint runner (bpf_trace_run4 on 6.18,
// __bpf_trace_kfree_skb where it is not a tail call). A raw tracepoint
// program's stack starts there; the leading ones are left out.
func isTracingFrame(name string) bool {
	return strings.HasPrefix(name, "bpf_prog_") || strings.HasPrefix(name, "bpf_trace_run") ||
		strings.HasPrefix(name, "__bpf_trace_")
}

func (r *dropReport) record(raw []byte) error {
	if err := events.DecodeDrop(raw, r.clock, r.reasons, &r.ev); err != nil {
		return err
	}
	ev := &r.ev
	reason := ev.ReasonName
	if reason == "" && ev.HasReason {
		reason = strconv.FormatUint(uint64(ev.Reason), 10)
	}
	r.drops++
	if reason != "" {
		r.byReason[reason]++
	}
	flags := string(events.TCPFlagString(ev.TCPFlags, r.flagBuf[:]))
	r.nameBuf = r.syms.AppendName(r.nameBuf[:0], ev.Location)
	location := string(r.nameBuf)
	stack, err := r.stackOf(ev.StackID)
	if err != nil {
		return err
	}
	if r.json() {
		r.rec = output.DropRecord{Type: "drop", Time: timestamp(ev.Time), Conn: r.conn(ev.Local, ev.Remote),
			Direction: ev.DirectionName(), Reason: reason, Flags: flags,
			Location: location, LocationAddr: string(ksym.AppendHex(r.nameBuf[:0], ev.Location)), Stack: stack, PID: ev.PID}
		return r.out.Emit(&r.rec)
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
	if reason == "" {
		reason = "-" // a kernel without drop reasons
	}
	if err := r.table.Row(ev.Time, strconv.FormatUint(uint64(ev.PID), 10), ev.Local.String(), dir, ev.Remote.String(),
		flags, location, reason); err != nil {
		return err
	}
	// --stack: one indented frame a line under the row, as BCC's tcpdrop.
	for _, frame := range stack {
		if _, err := fmt.Fprintf(r.w, "\t%s\n", frame); err != nil {
			return err
		}
	}
	return nil
}

func (r *dropReport) summary(elapsed time.Duration, loss output.Loss) error {
	s := output.DropSummary{Type: "summary", DurationSeconds: elapsed.Seconds(), Drops: r.drops, Reasons: r.byReason, Loss: loss}
	var firstErr error
	if r.stacksLost != nil {
		n, err := r.stacksLost()
		if err != nil {
			firstErr = err
		}
		s.StacksLost = &n
	}
	if r.readListen != nil {
		now, err := r.readListen()
		if err != nil && firstErr == nil {
			firstErr = err
		}
		if err == nil {
			d := now.Sub(r.listenStart)
			s.ListenOverflows, s.ListenDrops = d.Overflows, d.Drops
		}
	}
	if r.json() {
		if err := r.emitSummary(&s); err != nil {
			return err
		}
		return firstErr
	}
	stacks := ""
	if s.StacksLost != nil {
		stacks = fmt.Sprintf("; %s lost (stack map full)", output.Plural(*s.StacksLost, "stack"))
	}
	_, err := fmt.Fprintf(r.w, "\nSummary: %.1fs: %s dropped; %s%s\n"+
		"Listen queues (the namespace's kernel counters, not in the records above): %s, %s\n",
		s.DurationSeconds, output.Plural(s.Drops, "TCP packet"), s.Loss.Text(), stacks,
		output.Plural(s.ListenOverflows, "overflow"), output.Plural(s.ListenDrops, "listen drop"))
	if err != nil {
		return err
	}
	return firstErr
}
