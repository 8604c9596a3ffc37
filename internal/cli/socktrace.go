package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/spf13/pflag"

	"github.com/tcplens/tcplens/internal/events"
	"github.com/tcplens/tcplens/internal/output"
	"github.com/tcplens/tcplens/internal/probe"
)

// sockCommand is the one description of a socket-path command in the CLI.
// Its kernel side (object, programs, tracepoints, and from them what
// doctor checks and the capabilities it needs) is its probe.SockObject;
// run does the rest that every such command shares: the flag set and
// its checks, loading and attaching, the banner, the read loop with
// --count, --duration and the drain on stop, flushing JSON lines, and the
// summary with what was lost. A command supplies only what is its own:
// its flags and its report (decoding a record, text and JSON, periodic
// report, summary). See docs/ARCHITECTURE.md, "How to add a command".
type sockCommand struct {
	object  *probe.SockObject // its Command is the command's name
	summary string            // one line, for the usage
	// noInterval, when set, is why the command refuses --interval: it
	// prints each record as it comes, and -c counts records. A command
	// with a periodic report leaves it empty and says in flags what
	// --interval and -c do.
	noInterval string
	// flags adds the command's own flags to fs (if any) and returns
	// prepare, run once the flags are parsed and checked: it checks the
	// command's own (a usage error exits 2 before anything is loaded) and
	// makes the run, writing through o.
	flags func(fs *pflag.FlagSet, c *common) (prepare func(env Env, o *sockOut) (*sockRun, error))
}

// sockRun is one run of a socket-path command, as its flags made it.
type sockRun struct {
	report eventReport
	// load loads and attaches the object; nil: the object as it is.
	load func(probe.SockTracerOptions) (*probe.SockTracer, error)
	// started runs once the programs are attached (optional): warnings
	// about what this kernel lacks, waiting for symbols.
	started func(st *sockTrace) error
	banner  string // text mode: what the run does, for stderr
	// counts says whether the record just handled counts towards --count
	// (nil: every record does).
	counts func() bool
	// tick is the periodic report every --interval (optional); -c then
	// counts ticks. final runs after a clean stop, before the summary
	// (optional): what arrived since the last tick.
	tick, final func(now time.Time) error
}

// sockCommands are the registered socket-path commands by name.
var sockCommands = map[string]*sockCommand{}

// registerSock makes d a command.
func registerSock(d *sockCommand) {
	sockCommands[d.object.Command] = d
	register(d.object.Command, d.summary, d.run)
}

func (d *sockCommand) run(ctx context.Context, env Env, args []string) error {
	name := d.object.Command
	fs, c, sf := sockCommandFlags(name)
	if d.noInterval != "" {
		countsEvents(fs)
		c.withoutInterval(d.noInterval)
	}
	prepare := d.flags(fs, c)
	opts, err := parseSockTrace(fs, env, args, c, sf)
	if err != nil {
		return err
	}
	o := newSockOut(env.Stdout, c.format, events.NewClock())
	run, err := prepare(env, o)
	if err != nil {
		return err
	}
	load := run.load
	if load == nil {
		load = d.object.Load
	}
	st, err := startSockTrace(c, name, opts, load)
	if err != nil {
		return err
	}
	defer st.Close()
	if run.started != nil {
		if err := run.started(st); err != nil {
			return err
		}
	}
	// Relative text times count from here.
	if o.style, err = sf.textStyle(); err != nil {
		return err
	}
	if c.format == output.Text && run.banner != "" {
		fmt.Fprintf(env.Stderr, "tcplens %s: %s; Ctrl-C to stop\n", name, run.banner)
	}
	start := time.Now()
	loop := streamLoop{c: c, reader: st.reader, tick: run.tick, handle: func(raw []byte) (bool, error) {
		if err := run.report.record(raw); err != nil {
			return false, err
		}
		counted := run.counts == nil || run.counts()
		if c.format == output.JSON {
			return counted, st.flushWhenIdle(o.out)
		}
		return counted, nil
	}}
	runErr := loop.run(ctx)
	if runErr == nil && run.final != nil {
		runErr = run.final(time.Now())
	}
	return st.finish(runErr, run.report, start)
}

// sockOut is what every socket-path report writes through: stdout as JSON
// lines or as a connection table, the kernel-to-wall clock for record
// times, and the text style (--timestamp, --wide) set once attached.
type sockOut struct {
	w      io.Writer
	out    *output.JSONLines
	format output.Format
	clock  events.Clock
	style  textStyle
	table  *output.ConnTable // made at the first text row
	names  addrNames
	comm   string // the last task name, see commName
}

func newSockOut(w io.Writer, f output.Format, clock events.Clock) *sockOut {
	return &sockOut{w: w, out: output.NewJSONLines(w), format: f, clock: clock}
}

// json reports whether records go out as JSON lines.
func (o *sockOut) json() bool { return o.format == output.JSON }

// emitSummary writes the summary line and flushes.
func (o *sockOut) emitSummary(s output.JSONAppender) error {
	if err := o.out.Emit(s); err != nil {
		return err
	}
	return o.out.Flush()
}

// conn is a record's 4-tuple, its addresses named through the cache.
func (o *sockOut) conn(local, remote netip.AddrPort) output.Conn {
	return output.Conn{LAddr: o.names.local.name(local.Addr()), LPort: local.Port(),
		RAddr: o.names.remote.name(remote.Addr()), RPort: remote.Port()}
}

// commName is a record's task name (comm, up to its NUL) as a string,
// the last one's string again when it is the same: the same few tasks
// make most records, and a new string per record allocates.
func (o *sockOut) commName(comm []byte) string {
	if n := bytes.IndexByte(comm, 0); n >= 0 {
		comm = comm[:n]
	}
	if string(comm) != o.comm {
		o.comm = string(comm)
	}
	return o.comm
}

// addrNames remembers the last local and the last remote address's text:
// records come in runs from the same hosts, and naming an address
// allocates, which a million records a second notice.
type addrNames struct{ local, remote addrName }

type addrName struct {
	addr netip.Addr
	text string
	ok   bool
}

func (n *addrName) name(a netip.Addr) string {
	if !n.ok || n.addr != a {
		n.addr, n.text, n.ok = a, a.String(), true
	}
	return n.text
}

// sockTraceFlags are the flags of the tracepoint commands (retrans, resets,
// drops): the socket filters and a hidden ring buffer size for tests.
type sockTraceFlags struct {
	sockFlags
	text            textFlags
	ringBufferBytes uint32
}

func (s *sockTraceFlags) register(fs *pflag.FlagSet) {
	s.sockFlags.register(fs)
	s.text.register(fs)
	fs.Uint32Var(&s.ringBufferBytes, "ring-buffer-bytes", 0, "size the event ring buffer to `BYTES` (a power of two, at least a page)")
	fs.MarkHidden("ring-buffer-bytes") // for tests that provoke loss
}

// options checks the flags and makes the loader's options.
func (s *sockTraceFlags) options() (probe.SockTracerOptions, error) {
	f, err := s.filter()
	if err != nil {
		return probe.SockTracerOptions{}, err
	}
	if _, err := s.textStyle(); err != nil {
		return probe.SockTracerOptions{}, err
	}
	return probe.SockTracerOptions{Filter: f, RingBufferBytes: s.ringBufferBytes}, nil
}

// textStyle is the text layout the flags ask for; relative times count
// from now.
func (s *sockTraceFlags) textStyle() (textStyle, error) {
	family := 0
	if s.ipv4 {
		family = 4
	} else if s.ipv6 {
		family = 6
	}
	return s.text.style(time.Now(), family)
}

// sockTrace is a loaded, attached socket-path object and its reader.
type sockTrace struct {
	tracer *probe.SockTracer // nil when tests fake the kernel side
	reader recordReader
}

// startSockTrace is startKernelSockTrace, or in tests a fake that hands
// recorded records to the commands without loading anything.
var startSockTrace = startKernelSockTrace

// startKernelSockTrace loads and attaches one object, opens its ring
// buffer and writes the ready file, or does none of it.
func startKernelSockTrace(c *common, what string, opts probe.SockTracerOptions,
	load func(probe.SockTracerOptions) (*probe.SockTracer, error)) (*sockTrace, error) {
	if err := probe.CheckPrivileges(what); err != nil {
		return nil, err
	}
	if err := prepareBPF(); err != nil {
		return nil, err
	}
	tr, err := load(opts)
	if err != nil {
		return nil, err
	}
	rd, err := events.NewReader(tr.Events, tr.Lost)
	if err != nil {
		tr.Close()
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := writeReadyFile(c.readyFile, what+" tracepoints attached"); err != nil {
		rd.Close()
		tr.Close()
		return nil, err
	}
	return &sockTrace{tracer: tr, reader: rd}, nil
}

func (s *sockTrace) Close() error {
	rerr := s.reader.Close()
	if s.tracer == nil {
		return rerr
	}
	return errors.Join(rerr, s.tracer.Close())
}

// flushWhenIdle flushes JSON lines once the ring buffer is empty: one
// write per burst, yet nothing waits in the buffer while idle.
func (s *sockTrace) flushWhenIdle(out *output.JSONLines) error {
	if s.reader.Pending() > 0 {
		return nil
	}
	return out.Flush()
}

// eventReport prints a socket-path command's records as they come and its
// summary at the end.
type eventReport interface {
	record(raw []byte) error
	summary(elapsed time.Duration, loss output.Loss) error
}

// finish prints the summary with what was lost, even after a runtime
// error, and returns the first error.
func (s *sockTrace) finish(runErr error, r eventReport, start time.Time) error {
	loss, err := s.loss()
	if err != nil && runErr == nil {
		runErr = err
	}
	if err := r.summary(time.Since(start), loss); err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}

// loss adds up what the object did not see: records the ring buffer had no
// room for and per-socket entries it could not make (counted by the BPF
// side), and runs the kernel skipped for recursion (counted by the kernel,
// or found by states at tcp_destroy_sock).
func (s *sockTrace) loss() (output.Loss, error) {
	k, err := s.reader.Lost()
	if err != nil {
		return output.Loss{}, err
	}
	var rec uint64
	if s.tracer != nil { // nil when tests fake the kernel side
		if rec, err = s.tracer.RecursionMisses(); err != nil {
			return output.Loss{}, err
		}
	}
	// A CLOSE found unseen is one of the runs the kernel skipped; some
	// kernels (6.1) do not count those for tracepoint programs, so take
	// the larger of the two rather than both.
	rec = max(rec, k.UnseenClose)
	return output.NewLoss(output.LostByCause{RingBuffer: k.RingBuffer, MapFull: k.MapFull, Recursion: rec}), nil
}

// sockCommandFlags is the flag set every socket-path command starts from:
// the shared flags and the socket filters. They stream by default: a
// command with a periodic report says what --interval does there, one
// without calls withoutInterval.
func sockCommandFlags(name string) (*pflag.FlagSet, *common, *sockTraceFlags) {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	c, sf := &common{}, &sockTraceFlags{}
	c.register(fs, 0)
	sf.register(fs)
	return fs, c, sf
}

// parseSockTrace parses and checks a socket-path command's flags.
func parseSockTrace(fs *pflag.FlagSet, env Env, args []string, c *common, sf *sockTraceFlags) (probe.SockTracerOptions, error) {
	if err := parseFlags(fs, env, args); err != nil {
		return probe.SockTracerOptions{}, err
	}
	if err := c.validate(); err != nil {
		return probe.SockTracerOptions{}, err
	}
	return sf.options()
}
