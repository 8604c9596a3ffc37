package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/spf13/pflag"

	"github.com/tcplens/tcplens/internal/bpfobj"
	"github.com/tcplens/tcplens/internal/events"
	"github.com/tcplens/tcplens/internal/ksym"
	"github.com/tcplens/tcplens/internal/netstat"
	"github.com/tcplens/tcplens/internal/output"
	"github.com/tcplens/tcplens/internal/probe"
)

func rawRecord[T any](v *T) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(v)), unsafe.Sizeof(*v))
}

type names map[uint64]string

func (n names) Name(v uint64) string { return n[v] }

var goldenZero = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// TestSockTraceJSONGolden runs fabricated records of each tracepoint
// command through its report, JSON and text, and compares with golden files.
func TestSockTraceJSONGolden(t *testing.T) {
	var re bpfobj.RetransRetransEvent
	re.TsNs = 1_000_000_123
	re.Addrs.Family = 4
	copy(re.Addrs.Saddr[:], []byte{10, 200, 0, 1})
	copy(re.Addrs.Daddr[:], []byte{10, 200, 0, 2})
	re.Addrs.Sport, re.Addrs.Dport = 40000, 5201
	re.TotalRetrans, re.Segs, re.SkbSegs, re.State = 23, 23, 23, 1

	var rs bpfobj.ResetsResetEvent
	rs.TsNs = 2_000_000_000
	rs.Addrs.Family = 6
	rs.Addrs.Saddr = netip.MustParseAddr("fd00:200::2").As16()
	rs.Addrs.Daddr = netip.MustParseAddr("fd00:200::1").As16()
	rs.Addrs.Sport, rs.Addrs.Dport = 80, 50000
	rs.Reason, rs.ReasonKnown, rs.Direction = 1, 1, events.ResetSent

	var dr bpfobj.DropsDropEvent
	dr.TsNs = 3_000_000_000
	dr.Addrs = rs.Addrs
	dr.Reason, dr.Direction, dr.TcpFlags, dr.Location = 3, events.DropIn, 0x02, 0xffffffff82033a51
	dr.HasReason, dr.StackId = 1, 7
	syms, err := ksym.Parse("ffffffff820339c0 T tcp_v4_rcv\nffffffff82000000 t ip_local_deliver_finish\n")
	if err != nil {
		t.Fatal(err)
	}
	stack := func(id int32, buf []uint64) ([]uint64, error) {
		if id != 7 {
			return nil, fmt.Errorf("no stack %d", id)
		}
		return append(buf, 0xffffffff82033a51, 0xffffffff82000042, 0xffffffff70000000), nil
	}
	stacksLost := func() (uint64, error) { return 2, nil }
	listen := func() (netstat.Listen, error) { return netstat.Listen{Overflows: 13, Drops: 15}, nil }

	for _, f := range []output.Format{output.JSON, output.Text} {
		var buf bytes.Buffer
		clock := events.ClockFrom(goldenZero)
		r := newRetransReport(newSockOut(&buf, f, clock), false)
		if err := r.record(rawRecord(&re)); err != nil {
			t.Fatal(err)
		}
		r.out.Flush()
		r.summary(1500*time.Millisecond, output.NewLoss(output.LostByCause{RingBuffer: 2}))
		rr := &resetReport{sockOut: newSockOut(&buf, f, clock),
			reasons: names{1: "NO_SOCKET"}, byReason: map[string]uint64{}}
		if err := rr.record(rawRecord(&rs)); err != nil {
			t.Fatal(err)
		}
		rr.out.Flush()
		rr.summary(time.Second, output.Loss{})
		dp := &dropReport{sockOut: newSockOut(&buf, f, clock),
			reasons: names{3: "NO_SOCKET"}, byReason: map[string]uint64{}, syms: syms, stack: stack, stacksLost: stacksLost,
			listenStart: netstat.Listen{Overflows: 10, Drops: 10}, readListen: listen}
		if err := dp.record(rawRecord(&dr)); err != nil {
			t.Fatal(err)
		}
		dp.out.Flush()
		dp.summary(time.Second, output.Loss{})

		// Interval mode: two records of one connection add up.
		buf2 := &buf
		ri := newRetransReport(newSockOut(buf2, f, clock), true)
		ri.record(rawRecord(&re))
		ri.record(rawRecord(&re))
		if err := ri.flushInterval(goldenZero.Add(2 * time.Second)); err != nil {
			t.Fatal(err)
		}
		golden(t, "socktrace."+string(f)+".golden", buf.Bytes())
	}
}

func TestRetransDecodeIntoReportDoesNotAllocate(t *testing.T) {
	var re bpfobj.RetransRetransEvent
	re.Addrs.Family = 4
	r := newRetransReport(newSockOut(&bytes.Buffer{}, output.JSON, events.NewClock()), true)
	r.record(rawRecord(&re)) // the connection's counter is made once
	if n := testing.AllocsPerRun(100, func() { r.record(rawRecord(&re)) }); n != 0 {
		t.Errorf("counting a known connection's retransmission allocates %.1f times", n)
	}
}

// TestEverySockObjectHasACommand: the probe's descriptors (what doctor
// checks, the capabilities, the load and privilege tests) and the CLI's
// describe the same commands, so none is loadable but unreachable or the
// other way round.
func TestEverySockObjectHasACommand(t *testing.T) {
	names := probe.SockCommands()
	if len(names) != len(sockCommands) {
		t.Errorf("probe describes %d socket-path commands (%v), the CLI %d", len(names), names, len(sockCommands))
	}
	for _, name := range names {
		d, ok := sockCommands[name]
		if !ok {
			t.Errorf("%s: a probe.SockObject without a sockCommand", name)
			continue
		}
		if _, ok := commands[name]; !ok {
			t.Errorf("%s: not registered as a command", name)
		}
		if _, ok := probe.CommandNeeds[name]; !ok {
			t.Errorf("%s: doctor has no needs for it", name)
		}
		if d.summary == "" {
			t.Errorf("%s: no summary", name)
		}
	}
}

// countingReport is the least a socket-path command can supply: it counts
// records and writes one summary.
type countingReport struct {
	o       *sockOut
	records int
	elapsed time.Duration
	loss    output.Loss
}

func (r *countingReport) record([]byte) error { r.records++; return nil }

func (r *countingReport) summary(elapsed time.Duration, loss output.Loss) error {
	r.elapsed, r.loss = elapsed, loss
	_, err := fmt.Fprintf(r.o.w, "summary %d\n", r.records)
	return err
}

// TestDescriptorAloneMakesACommand: a command that is nothing but a
// sockCommand and a report gets the shared behaviour from run: the
// socket filters and their checks, --interval refused with its reason,
// -c, the banner, the loss summary.
func TestDescriptorAloneMakesACommand(t *testing.T) {
	var rep *countingReport
	d := &sockCommand{object: &probe.RetransObject, summary: "test", noInterval: "it streams",
		flags: func(*pflag.FlagSet, *common) func(Env, *sockOut) (*sockRun, error) {
			return func(_ Env, o *sockOut) (*sockRun, error) {
				rep = &countingReport{o: o}
				return &sockRun{report: rep, banner: "counting"}, nil
			}
		}}
	run := func(args ...string) (stdout, stderr string, err error) {
		var out, errb bytes.Buffer
		err = d.run(context.Background(), Env{Stdout: &out, Stderr: &errb}, args)
		return out.String(), errb.String(), err
	}

	fr := &fakeReader{records: retransRecords(10), lost: events.KernelLoss{RingBuffer: 4}}
	fakeKernel(t, fr)
	stdout, stderr, err := run("-c", "3", "--port", "5201")
	if err != nil {
		t.Fatal(err)
	}
	if rep.records != 3 || fr.unread() != 7 || stdout != "summary 3\n" {
		t.Errorf("-c 3: %d records handled, %d unread, stdout %q", rep.records, fr.unread(), stdout)
	}
	if rep.loss.Lost != 4 || rep.loss.LostByCause.RingBuffer != 4 {
		t.Errorf("summary got loss %+v, want the reader's 4", rep.loss)
	}
	if !strings.Contains(stderr, "retrans: counting") {
		t.Errorf("no banner on stderr: %q", stderr)
	}

	for _, args := range [][]string{{"--interval", "1s"}, {"--port", "0"}, {"-4", "-6"}} {
		rep = nil
		_, _, err := run(args...)
		var u usageError
		if !errors.As(err, &u) {
			t.Errorf("%v: %v, want a usage error (exit 2)", args, err)
		}
		if rep != nil {
			t.Errorf("%v: the report was made despite bad flags", args)
		}
	}
}
