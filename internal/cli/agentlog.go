package cli

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"

	"github.com/tcplens/tcplens/internal/events"
	"github.com/tcplens/tcplens/internal/ksym"
	"github.com/tcplens/tcplens/internal/output"
)

// agentLog writes the agent's JSON-lines event log (--log): the records
// of the stream commands (retrans, resets, states, drops), to stdout or a
// file rotated by size. It is called under the feed's lock.
type agentLog struct {
	streams []string
	retrans *retransReport // builds retransmit records as `retrans` does
	out     *output.JSONLines
	w       io.Writer
	flush   func() error
	close   func() error
	flagBuf [8]byte
	addrBuf []byte
	pid     uint32
	comm    string
	dur, hs float64
}

func newAgentLog(streams []string, path string, maxBytes int64, stdout io.Writer) (*agentLog, error) {
	l := &agentLog{streams: streams, retrans: &retransReport{sockOut: &sockOut{format: output.JSON}}}
	if path == "" || path == "-" {
		bw := bufio.NewWriterSize(stdout, 64<<10)
		l.w, l.flush, l.close = bw, bw.Flush, bw.Flush
	} else {
		r, err := newRotatingFile(path, maxBytes)
		if err != nil {
			return nil, err
		}
		bw := bufio.NewWriterSize(r, 64<<10)
		l.w, l.flush = bw, bw.Flush
		l.close = func() error { bw.Flush(); return r.Close() }
	}
	l.out = output.NewJSONLines(l.w)
	return l, nil
}

func (l *agentLog) wants(s string) bool { return slices.Contains(l.streams, s) }

func (l *agentLog) Retransmit(ev *events.Retransmit) {
	if l.wants("retrans") {
		rec := l.retrans.retransmitRecord(ev)
		l.out.Emit(&rec)
	}
}

func (l *agentLog) Reset(ev *events.Reset) {
	if !l.wants("resets") {
		return
	}
	reason := ""
	if ev.ReasonKnown {
		reason = ev.ReasonName
		if reason == "" {
			reason = strconv.FormatUint(uint64(ev.Reason), 10)
		}
	}
	l.out.Emit(&output.ResetRecord{Type: "reset", Time: timestamp(ev.Time), Conn: connRecord(ev.Local, ev.Remote),
		Direction: ev.DirectionName(), State: events.TCPStateName(ev.State), Reason: reason, PID: ev.PID})
}

func (l *agentLog) StateChange(ev *events.StateChange) {
	if !l.wants("states") {
		return
	}
	var pid *uint32
	var comm *string
	if ev.PID != 0 {
		l.pid, l.comm = ev.PID, ev.CommString()
		pid, comm = &l.pid, &l.comm
	}
	if ev.Kind == events.StateKindLifetime {
		l.out.Emit(&output.LifetimeRecord{Type: "lifetime", Time: timestamp(ev.Time), Conn: connRecord(ev.Local, ev.Remote),
			DurationUS: micros(ev.Lifetime), FromStart: ev.FromStart, LastState: events.TCPStateName(ev.OldState),
			BytesAcked: ev.BytesAcked, BytesReceived: ev.BytesReceived, TotalRetrans: ev.TotalRetrans, PID: pid, Comm: comm})
		return
	}
	rec := output.StateRecord{Type: "state", Time: timestamp(ev.Time), Conn: connRecord(ev.Local, ev.Remote),
		OldState: events.TCPStateName(ev.OldState), NewState: events.TCPStateName(ev.NewState), PID: pid, Comm: comm}
	if ev.DurationKnown {
		l.dur = micros(ev.Duration)
		rec.DurationUS = &l.dur
	}
	if ev.HandshakeKnown {
		l.hs = micros(ev.Handshake)
		rec.HandshakeUS = &l.hs
	}
	l.out.Emit(&rec)
}

func (l *agentLog) Drop(ev *events.Drop) {
	if !l.wants("drops") {
		return
	}
	reason := ev.ReasonName
	if reason == "" && ev.HasReason {
		reason = strconv.FormatUint(uint64(ev.Reason), 10)
	}
	addr := string(ksym.AppendHex(l.addrBuf[:0], ev.Location))
	l.out.Emit(&output.DropRecord{Type: "drop", Time: timestamp(ev.Time), Conn: connRecord(ev.Local, ev.Remote),
		Direction: ev.DirectionName(), Reason: reason, Flags: string(events.TCPFlagString(ev.TCPFlags, l.flagBuf[:])),
		Location: addr, LocationAddr: addr, PID: ev.PID})
}

func (l *agentLog) Flush() error { return l.flush() }
func (l *agentLog) Close() error { return l.close() }

// rotatingFile is a log file that, past maxBytes, is renamed to PATH.1
// (the previous PATH.1 is dropped) and started anew.
type rotatingFile struct {
	path string
	max  int64
	f    *os.File
	size int64
}

func newRotatingFile(path string, max int64) (*rotatingFile, error) {
	r := &rotatingFile{path: path, max: max}
	if err := r.open(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *rotatingFile) open() error {
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("event log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("event log: %w", err)
	}
	r.f, r.size = f, st.Size()
	return nil
}

func (r *rotatingFile) Write(p []byte) (int, error) {
	if r.max > 0 && r.size > 0 && r.size+int64(len(p)) > r.max {
		r.f.Close()
		if err := os.Rename(r.path, r.path+".1"); err != nil {
			return 0, fmt.Errorf("event log: rotate: %w", err)
		}
		if err := r.open(); err != nil {
			return 0, err
		}
	}
	n, err := r.f.Write(p)
	r.size += int64(n)
	return n, err
}

func (r *rotatingFile) Close() error { return r.f.Close() }
