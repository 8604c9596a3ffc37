package integration

// The kernel half of a socket-path command's end-to-end rate: how many
// records per second `tcplens states -o json` takes from the kernel to
// JSON lines, and from what rate it starts losing. The load is a bounded
// connect/accept/close loop over loopback (b.N connections, at most 60 s),
// with W dialers in parallel; each connection makes about a dozen records
// (both ends' transitions and lifetimes).
//
//	sudo go test -run '^$' -bench StatesKernelRate -benchtime 20000x ./test/integration/
//
// tcplens runs pinned to one core (taskset); the load runs where the
// scheduler puts it, the last core included.
//
// Metrics: conn/s the loop achieved while traced; records/s the JSON lines
// tcplens wrote over that time (what reached user space and was written);
// records/cpu-s the same per second of tcplens's own CPU time (user +
// system), tcplens-cpu-% its share of one core;
// lost and lost-% what tcplens counted as lost (ring buffer, recursion,
// map full), from its summary; rec/conn records per connection. The
// oracle for "nothing lost" is independent of the summary: each
// connection must give its two lifetime lines.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tcplens/tcplens/internal/testnet"
	"github.com/tcplens/tcplens/internal/testutil"
)

func BenchmarkStatesKernelRate(b *testing.B) {
	testutil.RequirePrivileged(b)
	// The default ring buffer (1 MiB, bpf/sock_common.h), and 16 MiB
	// through the hidden --ring-buffer-bytes: which losses come from the
	// reader being scheduled late rather than from its speed.
	for _, ring := range []int{0, 16 << 20} {
		for _, workers := range []int{1, 2, 4} {
			b.Run(fmt.Sprintf("ring=%dMiB/dialers=%d", max(ring>>20, 1), workers), func(b *testing.B) {
				if b.N < 1000 {
					// The framework's first run (b.N = 1); a skip here
					// would skip the real one too. Give -benchtime 20000x.
					return
				}
				benchStatesKernelRate(b, workers, ring)
			})
		}
	}
}

// loopbackRound makes each run's listener address differ (127.0.0.2,
// .3, ...), so that the clients' TIME_WAIT sockets of one run do not
// exhaust the ephemeral ports of the next.
var loopbackRound atomic.Uint32

func benchStatesKernelRate(b *testing.B, workers, ring int) {
	addr := fmt.Sprintf("127.0.%d.%d", 1+loopbackRound.Load()/250, 2+loopbackRound.Add(1)%250)
	ln, err := net.Listen("tcp4", addr+":0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()

	args := []string{"states", "-o", "json", "--port", fmt.Sprint(port)}
	if ring > 0 {
		args = append(args, "--ring-buffer-bytes", fmt.Sprint(ring))
	}
	lines, sum, stop := startCounting(b, args...)

	b.ResetTimer()
	start := time.Now()
	deadline := start.Add(60 * time.Second)
	var next atomic.Int64
	var dialErrs, done atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) && time.Now().Before(deadline) {
				c, err := net.DialTimeout("tcp4", ln.Addr().String(), 5*time.Second)
				if err != nil {
					dialErrs.Add(1)
					continue
				}
				// Wait for the server's close, so that both ends go
				// through their whole lifetime before the next dial.
				c.Read(make([]byte, 1))
				c.Close()
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	// The last closes (LAST_ACK -> CLOSE) reach the ring buffer a little
	// later.
	time.Sleep(300 * time.Millisecond)
	s := stop()
	conns := float64(done.Load())
	if dialErrs.Load() > 0 {
		b.Logf("%d dials failed", dialErrs.Load())
	}
	n := lines.Load() - 1 // the summary
	cpu := s.cpu.Seconds()
	lost := s.Lost
	b.ReportMetric(conns/elapsed.Seconds(), "conn/s")
	b.ReportMetric(float64(n)/elapsed.Seconds(), "records/s")
	b.ReportMetric(float64(n)/conns, "rec/conn")
	b.ReportMetric(float64(lost), "lost")
	b.ReportMetric(100*float64(lost)/float64(n+int64(lost)), "lost-%")
	b.ReportMetric(0, "ns/op")
	// tcplens's own CPU time (user + system, all threads) over the run:
	// what a record costs the whole user-space side on the real ring
	// buffer, as a rate per CPU-second.
	b.ReportMetric(float64(n)/cpu, "records/cpu-s")
	b.ReportMetric(100*cpu/elapsed.Seconds(), "tcplens-cpu-%")
	b.Logf("%d dialers: %.0f connections in %v; %d records, %d lifetimes (want %.0f: two per connection), lost %d %v",
		workers, conns, elapsed.Round(time.Millisecond), n, sum.Lifetimes, 2*conns, lost, s.LostByCause)
	if sum.Lifetimes+lost < uint64(2*conns) {
		b.Errorf("lifetimes %d + lost %d < 2 x %.0f connections: records went missing uncounted", sum.Lifetimes, lost, conns)
	}
}

type statesSummary struct {
	cpu         time.Duration     // tcplens's user + system time
	Type        string            `json:"type"`
	Transitions uint64            `json:"transitions"`
	Lifetimes   uint64            `json:"lifetimes"`
	Lost        uint64            `json:"lost"`
	LostByCause map[string]uint64 `json:"lost_by_cause"`
}

// startCounting runs tcplens with its stdout counted, not kept (a million
// lines would not fit a test's memory comfortably); the last line, the
// summary, is decoded by stop, which interrupts tcplens as Ctrl-C does.
func startCounting(b *testing.B, args ...string) (*atomic.Int64, *statesSummary, func() statesSummary) {
	b.Helper()
	ready := b.TempDir() + "/ready"
	// tcplens runs on one core (the last), every thread of it: the rate is
	// what one core turns into JSON lines.
	cpus := runtime.NumCPU()
	cmd := exec.Command("taskset", append([]string{"-c", fmt.Sprint(cpus - 1), testnet.Tcplens(b)}, append(args, "--ready-file", ready)...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	var lines atomic.Int64
	var last string
	done := make(chan struct{})
	go func() {
		defer close(done)
		r := bufio.NewReaderSize(out, 1<<20)
		for {
			line, err := r.ReadSlice('\n')
			if len(line) > 0 && line[len(line)-1] == '\n' {
				lines.Add(1)
				if line[2] == 't' && strings.HasPrefix(string(line), `{"type":"summary"`) {
					last = string(line)
				}
			}
			if err == bufio.ErrBufferFull {
				continue
			}
			if err != nil {
				io.Copy(io.Discard, r)
				return
			}
		}
	}()
	stopped := false
	b.Cleanup(func() {
		if !stopped {
			cmd.Process.Kill()
			<-done
			cmd.Wait()
		}
	})
	testnet.WaitFor(b, 15*time.Second, "tcplens ready", func() bool {
		_, err := exec.Command("test", "-e", ready).Output()
		return err == nil
	})
	sum := &statesSummary{}
	return &lines, sum, func() statesSummary {
		stopped = true
		cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		cmd.Wait()
		sum.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		if err := json.Unmarshal([]byte(last), sum); err != nil {
			b.Fatalf("no summary (%v); stderr: %s", err, stderr.String())
		}
		return *sum
	}
}
