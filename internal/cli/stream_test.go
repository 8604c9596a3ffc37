package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tcplens/tcplens/internal/bpfobj"
	"github.com/tcplens/tcplens/internal/events"
	"github.com/tcplens/tcplens/internal/probe"
)

// fakeReader is the kernel side of a socket-path command, fed from
// recorded ring buffer records: Next hands them out in order, then blocks
// until the deadline as the ring buffer does.
type fakeReader struct {
	mu       sync.Mutex
	records  [][]byte
	lost     events.KernelLoss
	lostErr  error
	deadline time.Time
	closed   bool
}

func (f *fakeReader) Next() ([]byte, error) {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil, events.ErrClosed
	}
	if len(f.records) > 0 {
		r := f.records[0]
		f.records = f.records[1:]
		f.mu.Unlock()
		return r, nil
	}
	d := f.deadline
	f.mu.Unlock()
	if wait := time.Until(d); wait > 0 {
		time.Sleep(wait)
	}
	return nil, os.ErrDeadlineExceeded
}

func (f *fakeReader) SetDeadline(t time.Time) { f.mu.Lock(); f.deadline = t; f.mu.Unlock() }

// Pending is nonzero while records wait. The real reader gives their
// bytes; callers only compare with 0, and summing every record per call
// would make the fake, not the pipeline, what a benchmark measures.
func (f *fakeReader) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.records) == 0 {
		return 0
	}
	return len(f.records[0]) * len(f.records)
}

func (f *fakeReader) Lost() (events.KernelLoss, error) { return f.lost, f.lostErr }

func (f *fakeReader) Close() error { f.mu.Lock(); f.closed = true; f.mu.Unlock(); return nil }

func (f *fakeReader) unread() int { f.mu.Lock(); defer f.mu.Unlock(); return len(f.records) }

// fakeKernel makes the socket-path commands read fr instead of loading
// anything, for the rest of the test.
func fakeKernel(t testing.TB, fr *fakeReader) {
	t.Helper()
	old := startSockTrace
	startSockTrace = func(c *common, what string, _ probe.SockTracerOptions,
		_ func(probe.SockTracerOptions) (*probe.SockTracer, error)) (*sockTrace, error) {
		if err := writeReadyFile(c.readyFile, what+" (fake)"); err != nil {
			return nil, err
		}
		return &sockTrace{reader: fr}, nil
	}
	t.Cleanup(func() { startSockTrace = old })
}

// retransRecords makes n retransmission records as the kernel writes them
// into the ring buffer, each of its own connection.
func retransRecords(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		var ev bpfobj.RetransRetransEvent
		ev.TsNs = uint64(1_000_000_000 + i)
		ev.Addrs.Family = 4
		copy(ev.Addrs.Saddr[:], []byte{10, 200, 0, 1})
		copy(ev.Addrs.Daddr[:], []byte{10, 200, 0, 2})
		ev.Addrs.Sport, ev.Addrs.Dport = uint16(40000+i), 5201
		ev.TotalRetrans, ev.Segs, ev.SkbSegs, ev.State = uint32(i+1), 1, 1, 1
		ev.Pid = 15
		setComm(&ev.Comm, "ksoftirqd/1")
		out[i] = bytes.Clone(rawRecord(&ev))
	}
	return out
}

// jsonTypes counts the JSON lines by "type" and returns the summary.
func jsonTypes(t *testing.T, stdout string) (map[string]int, map[string]any) {
	t.Helper()
	types := map[string]int{}
	var summary map[string]any
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not JSON: %q: %v", line, err)
		}
		typ, _ := m["type"].(string)
		types[typ]++
		if typ == "summary" {
			summary = m
		}
	}
	if types["summary"] != 1 {
		t.Fatalf("%d summaries, want 1; output:\n%s", types["summary"], stdout)
	}
	return types, summary
}

// --count N stops after N records that count, and leaves the rest.
func TestStreamCount(t *testing.T) {
	fr := &fakeReader{records: retransRecords(10)}
	fakeKernel(t, fr)
	code, stdout, stderr := runCLI("retrans", "-o", "json", "--count", "3")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	types, sum := jsonTypes(t, stdout)
	if types["retransmit"] != 3 || sum["retransmits"] != 3.0 {
		t.Errorf("%d records, summary %v; want 3 and 3", types["retransmit"], sum)
	}
	if n := fr.unread(); n != 7 {
		t.Errorf("%d records left unread, want 7", n)
	}
}

// --duration ends an idle run on time, with a summary.
func TestStreamDuration(t *testing.T) {
	fakeKernel(t, &fakeReader{})
	start := time.Now()
	code, stdout, stderr := runCLI("retrans", "-o", "json", "--duration", "200ms")
	took := time.Since(start)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if took < 200*time.Millisecond {
		t.Errorf("returned after %v, before --duration 200ms", took)
	}
	_, sum := jsonTypes(t, stdout)
	if d, _ := sum["duration_seconds"].(float64); d < 0.2 {
		t.Errorf("summary duration_seconds %v, want at least 0.2", sum["duration_seconds"])
	}
}

// Records already in the ring buffer when the run stops are drained, not
// lost: --duration has passed at the first look, yet all five are printed.
func TestStreamDrainsOnStop(t *testing.T) {
	fr := &fakeReader{records: retransRecords(5)}
	fakeKernel(t, fr)
	code, stdout, stderr := runCLI("retrans", "-o", "json", "--duration", "1ns")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	types, sum := jsonTypes(t, stdout)
	if types["retransmit"] != 5 || sum["retransmits"] != 5.0 || fr.unread() != 0 {
		t.Errorf("%d records printed, summary %v, %d unread; want all 5 drained", types["retransmit"], sum, fr.unread())
	}
}

// What the kernel could not hand over is in the summary, JSON and text.
func TestStreamLossSummary(t *testing.T) {
	fakeKernel(t, &fakeReader{records: retransRecords(2), lost: events.KernelLoss{RingBuffer: 4, MapFull: 3}})
	code, stdout, stderr := runCLI("retrans", "-o", "json", "--duration", "50ms")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if _, sum := jsonTypes(t, stdout); sum["lost"] != 7.0 {
		t.Errorf("JSON summary lost %v, want 7", sum["lost"])
	}
	fakeKernel(t, &fakeReader{records: retransRecords(2), lost: events.KernelLoss{RingBuffer: 4, MapFull: 3}})
	code, stdout, stderr = runCLI("retrans", "--duration", "50ms")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "7 records lost") {
		t.Errorf("text summary does not say 7 records lost:\n%s", stdout)
	}
}

// When the loss counter cannot be read, the run fails (exit 1), yet the
// summary of what was seen is still printed.
func TestStreamLossUnreadable(t *testing.T) {
	fakeKernel(t, &fakeReader{records: retransRecords(1), lostErr: errors.New("read lost-record counter: bad map")})
	code, stdout, stderr := runCLI("retrans", "-o", "json", "--duration", "50ms")
	if code != ExitRuntime {
		t.Errorf("exit %d, want %d", code, ExitRuntime)
	}
	if !strings.Contains(stderr, "bad map") {
		t.Errorf("stderr does not say why: %q", stderr)
	}
	if types, _ := jsonTypes(t, stdout); types["retransmit"] != 1 {
		t.Errorf("%d records, want 1", types["retransmit"])
	}
}
