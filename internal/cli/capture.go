package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/tcplens/tcplens/internal/output"
	"github.com/tcplens/tcplens/internal/pcapout"
	"github.com/tcplens/tcplens/internal/pfilter"
	"github.com/tcplens/tcplens/internal/probe"
	"github.com/tcplens/tcplens/internal/sockproc"
)

func init() {
	register("capture", "capture TCP packets, filtered in the kernel, to pcapng (-w) or as tcpdump-like lines; words after the flags are a filter expression, as with tcpdump (and --filter)", runCapture)
}

type captureFlags struct {
	write, read string
	snaplen     int
	rotateSize  int64
	rotateCount int
	bufferSize  uint32
	noProcess   bool
}

func runCapture(ctx context.Context, env Env, args []string) error {
	fs := pflag.NewFlagSet("capture", pflag.ContinueOnError)
	var c common
	c.register(fs, 0)
	c.withoutInterval("capture prints packets as they come, it has no periodic report")
	fs.MarkHidden("output") // refused below: pcapng or text lines
	fs.Lookup("count").Usage = "exit after `N` packets (0: no limit)"
	c.registerPacket(fs)
	c.registerDirection(fs, "both")
	var pf packetFilterFlags
	pf.register(fs, true)
	var cf captureFlags
	fs.StringVarP(&cf.write, "write", "w", "", "write packets to pcapng `FILE` (-: standard output) instead of printing lines")
	fs.StringVarP(&cf.read, "read", "r", "", "print the packets of pcapng or pcap `FILE` (with the filter applied) instead of capturing")
	fs.IntVar(&cf.snaplen, "snaplen", -1, fmt.Sprintf("copy the first `N` bytes of each packet (headers: Ethernet, IP and TCP headers with options; 0: the whole packet up to %d bytes)", probe.MaxSnaplen))
	fs.Lookup("snaplen").DefValue = "headers"
	fs.Int64Var(&cf.rotateSize, "rotate-size", 0, "start a new file (FILE.1, FILE.2, ...) once the current one holds `BYTES` (0: never)")
	fs.IntVar(&cf.rotateCount, "rotate-count", 0, "keep at most `N` files, reusing their names in turn (needs --rotate-size)")
	fs.Uint32Var(&cf.bufferSize, "buffer-size", 4<<20, "kernel ring buffer `BYTES` (a power of two, at least 4096); packets that find it full are counted as lost")
	fs.BoolVar(&cf.noProcess, "no-process", false, "do not look up which process a packet's socket belongs to")
	exprArgs, err := parseFlagsArgs(fs, env, args)
	if err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return err
	}
	if c.format != output.Text {
		return usagef("-o %s: capture writes pcapng (-w) or text lines", c.output)
	}
	prog, err := pf.program(exprArgs)
	if err != nil {
		return err
	}
	if cf.read != "" {
		if cf.write != "" || len(c.interfaces) > 0 {
			return usagef("-r reads a file: it takes neither -w nor -i")
		}
		return readCapture(env, cf.read, prog, c.count)
	}
	snap := uint32(probe.SnapHeaders)
	switch {
	case cf.snaplen == 0:
		snap = probe.MaxSnaplen
	case cf.snaplen > probe.MaxSnaplen || (cf.snaplen < 0 && fs.Changed("snaplen")):
		return usagef("--snaplen %d: 0 (whole packet, up to %d bytes) or 1 to %d", cf.snaplen, probe.MaxSnaplen, probe.MaxSnaplen)
	case cf.snaplen > 0:
		snap = uint32(cf.snaplen)
	}
	if cf.rotateSize < 0 || cf.rotateCount < 0 {
		return usagef("--rotate-size and --rotate-count must not be negative")
	}
	if (cf.rotateSize > 0 || cf.rotateCount > 0) && (cf.write == "" || cf.write == "-") {
		return usagef("--rotate-size and --rotate-count rotate files: they need -w FILE")
	}
	if cf.rotateCount > 0 && cf.rotateSize == 0 {
		return usagef("--rotate-count needs --rotate-size")
	}
	if cf.bufferSize < 4096 || cf.bufferSize&(cf.bufferSize-1) != 0 {
		return usagef("--buffer-size %d: a power of two of at least 4096", cf.bufferSize)
	}

	pp, ctx, err := startPacketPath(ctx, env, "capture", &c, probe.PacketConfig{
		Filter:  prog,
		Capture: &probe.CaptureConfig{Snaplen: snap, RingSize: cf.bufferSize},
	})
	if err != nil {
		return err
	}
	defer pp.Close()
	rd, err := pp.NewCaptureReader()
	if err != nil {
		return err
	}
	defer rd.Close()

	// One interface block per interface and direction: index 2*slot+dir.
	attached := pp.Attachments()
	names := make([]string, pp.Slots())
	for _, a := range attached {
		names[a.Slot] = a.Interface.Name
	}
	var ifaces []pcapout.Interface
	for _, n := range names {
		ifaces = append(ifaces, pcapout.Interface{Name: n, Dir: pcapout.DirIn}, pcapout.Interface{Name: n, Dir: pcapout.DirOut})
	}
	fmt.Fprintf(env.Stderr, "tcplens capture: watching %s (%s); Ctrl-C to stop\n", describeAttachments(attached), pp.Direction())

	out := &captureOutput{env: env, names: names}
	if !cf.noProcess {
		out.procs = sockproc.New()
	}
	if cf.write != "" {
		opts := pcapout.WriterOptions{Interfaces: ifaces, RotateSize: cf.rotateSize, RotateCount: cf.rotateCount,
			Comment: "tcplens capture " + strings.Join(args, " ")}
		if snap != probe.SnapHeaders {
			opts.Snaplen = snap
		}
		if cf.write == "-" {
			out.pcap, err = pcapout.NewStreamWriter(env.Stdout, opts)
		} else {
			out.pcap, err = pcapout.NewFileWriter(cf.write, opts)
		}
		if err != nil {
			return err
		}
	} else {
		out.text = bufio.NewWriter(env.Stdout)
	}

	if c.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.duration)
		defer cancel()
	}
	clock := newMonoClock()
	written := uint64(0)
	var runErr error
	limitHit := func() bool { return c.count > 0 && written >= uint64(c.count) }
	deadline := time.Now().Add(100 * time.Millisecond)
	for ctx.Err() == nil && !limitHit() && runErr == nil {
		ev, data, err := rd.Read(deadline)
		if errors.Is(err, probe.ErrNoRecord) {
			// The ring is empty: write out what is buffered, then wait.
			runErr = out.flush()
			deadline = time.Now().Add(100 * time.Millisecond)
			continue
		}
		if err != nil {
			runErr = err
			break
		}
		runErr = out.packet(clock, ev, data)
		written++
	}
	// Detach, then take what the ring still holds: every packet the
	// kernel counted as captured is written (unless -c was reached).
	detachErr := pp.Detach()
	for runErr == nil && !limitHit() {
		ev, data, err := rd.Read(time.Now())
		if err != nil {
			if !errors.Is(err, probe.ErrNoRecord) {
				runErr = err
			}
			break
		}
		runErr = out.packet(clock, ev, data)
		written++
	}
	if err := out.close(); err != nil && runErr == nil {
		runErr = err
	}
	cc, err := pp.CaptureCounters()
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stderr, "%d packets captured, %d matched by filter, %d lost\n", written, cc.Matched, cc.Lost)
	if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		ctx = context.Background() // --duration: a clean end
	}
	if err := packetRunError(ctx, runErr); err != nil {
		return err
	}
	return detachErr
}

// captureOutput sends packets to a pcapng writer or as text lines.
type captureOutput struct {
	env   Env
	names []string
	pcap  *pcapout.Writer
	text  *bufio.Writer
	procs *sockproc.Table
	line  []byte
}

func (o *captureOutput) packet(clock monoClock, ev probe.CaptureEvent, data []byte) error {
	dir := pcapout.DirIn
	if ev.Dir == 1 {
		dir = pcapout.DirOut
	}
	p := pcapout.Packet{Time: clock.wall(ev.TsNs), Interface: 2*int(ev.Slot) + int(ev.Dir), Dir: dir, OrigLen: int(ev.OrigLen), Data: data}
	if o.procs != nil {
		p.Comment = o.procs.Describe(data)
	}
	if o.pcap != nil {
		return o.pcap.Write(p)
	}
	name := ""
	if int(ev.Slot) < len(o.names) {
		name = o.names[ev.Slot]
	}
	o.line = pcapout.Line(o.line[:0], p, name)
	_, err := o.text.Write(o.line)
	return err
}

func (o *captureOutput) flush() error {
	if o.pcap != nil {
		return o.pcap.Flush()
	}
	return o.text.Flush()
}

func (o *captureOutput) close() error {
	if o.pcap != nil {
		return o.pcap.Close()
	}
	return o.text.Flush()
}

// monoClock turns the kernel's CLOCK_MONOTONIC nanoseconds
// (bpf_ktime_get_ns) into wall-clock time, by the offset between the two
// clocks read once at the start (a wall-clock step during the capture is
// not followed).
type monoClock struct{ offset int64 }

func newMonoClock() monoClock {
	var ts unix.Timespec
	before := time.Now()
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return monoClock{offset: before.UnixNano() - ts.Nano()}
}

func (c monoClock) wall(mono uint64) time.Time { return time.Unix(0, int64(mono)+c.offset) }

// readCapture prints a file's packets that pass the filter (evaluated in
// Go, as the kernel would), up to count of them.
func readCapture(env Env, path string, prog pfilter.Program, count int) error {
	w := bufio.NewWriter(env.Stdout)
	n := 0
	var line []byte
	errStop := errors.New("stop")
	err := pcapout.ReadFile(path, func(p pcapout.Packet, name string) error {
		if fp, ok := filterPacket(p.Data); ok && !prog.Match(fp) {
			return nil
		} else if !ok && len(prog) > 0 {
			return nil
		}
		line = pcapout.Line(line[:0], p, name)
		if _, err := w.Write(line); err != nil {
			return err
		}
		n++
		if count > 0 && n >= count {
			return errStop
		}
		return nil
	})
	if errors.Is(err, errStop) {
		err = nil
	}
	if errors.Is(err, pcapout.ErrNotCapture) {
		return usageError{err.Error()}
	}
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stderr, "%d packets read\n", n)
	return nil
}

// filterPacket reads what the filter looks at from a frame.
func filterPacket(b []byte) (pfilter.Packet, bool) {
	t, ok := sockproc.ParseTuple(b)
	if !ok {
		return pfilter.Packet{}, false
	}
	return pfilter.Packet{Src: t.Src, Dst: t.Dst, SPort: t.SPort, DPort: t.DPort, Flags: t.Flags}, true
}
