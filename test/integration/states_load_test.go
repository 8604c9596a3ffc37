package integration

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcplens/tcplens/internal/testnet"
	"github.com/tcplens/tcplens/internal/testutil"
)

// statesLoadConns is how many connections TestStatesManyConnections holds
// open at once: the 10,000 of issue 6 item 2.
const statesLoadConns = 10000

// statesLoadConnections is statesLoadConns, or TCPLENS_STATES_LOAD_CONNS
// when set, or a fifth of it on a software-emulated CPU (qemu TCG, as in
// the kernel matrix), where opening 10,000 connections alone takes over a
// minute: the accounting checked is the same at any count.
func statesLoadConnections(t *testing.T) int {
	t.Helper()
	if v := os.Getenv("TCPLENS_STATES_LOAD_CONNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > statesLoadConns {
			t.Fatalf("TCPLENS_STATES_LOAD_CONNS=%q: want 1..%d", v, statesLoadConns)
		}
		return n
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil && strings.Contains(string(b), "QEMU TCG CPU") {
		t.Logf("software-emulated CPU (qemu TCG): %d connections instead of %d, which take minutes here",
			statesLoadConns/5, statesLoadConns)
		return statesLoadConns / 5
	}
	return statesLoadConns
}

// statesLoadRing holds every record of the test (about 12 per connection,
// 128 bytes each) even if the reader is starved of CPU, as it is on a busy
// CI machine: ring buffer loss is then a defect, not the scheduler's
// doing. With the default 1 MiB ring, BENCHMARKS.md says what is lost.
const statesLoadRing = 16 << 20

// raiseNoFile lets this process hold n more descriptors, restoring the
// limit when the test ends.
func raiseNoFile(t *testing.T, n uint64) {
	t.Helper()
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	want := old
	if want.Cur < n {
		want.Cur = n
	}
	if want.Max < want.Cur {
		want.Max = want.Cur
	}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &want); err != nil {
		t.Fatalf("raise RLIMIT_NOFILE to %d: %v", n, err)
	}
	t.Cleanup(func() { unix.Setrlimit(unix.RLIMIT_NOFILE, &old) })
}

// loadServer is a child process (this test binary) that listens in a
// namespace, accepts n connections and holds them until told to close.
type loadServer struct {
	addr  netip.AddrPort
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines *bufio.Scanner
}

const loadServerEnv = "TCPLENS_TEST_LOAD_SERVER"

func startLoadServer(t *testing.T, ns *testnet.NS, n int) *loadServer {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns.Name, os.Args[0], "-test.run=^TestLoadServerHelper$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%d", loadServerEnv, ns.IPv4, n))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start load server: %v", err)
	}
	s := &loadServer{cmd: cmd, in: in, lines: bufio.NewScanner(out)}
	t.Cleanup(func() {
		in.Close() // the helper exits when its stdin ends
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	s.addr = netip.MustParseAddrPort(s.await(t, "listening "))
	return s
}

// await reads the helper's next line, which must start with prefix, and
// returns the rest; it fails the test after 3 minutes.
func (s *loadServer) await(t *testing.T, prefix string) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		if s.lines.Scan() {
			got <- s.lines.Text()
		}
		close(got)
	}()
	select {
	case line, ok := <-got:
		if !ok || !strings.HasPrefix(line, prefix) {
			t.Fatalf("load server said %q, want %q...", line, prefix)
		}
		return strings.TrimPrefix(line, prefix)
	case <-time.After(3 * time.Minute):
		t.Fatalf("load server: no %q within 3 minutes", prefix)
	}
	return ""
}

func (s *loadServer) send(t *testing.T, line string) {
	t.Helper()
	if _, err := fmt.Fprintln(s.in, line); err != nil {
		t.Fatalf("tell load server %q: %v", line, err)
	}
}

// TestLoadServerHelper is the load server when run as one by
// startLoadServer, and does nothing otherwise.
func TestLoadServerHelper(t *testing.T) {
	spec := os.Getenv(loadServerEnv)
	if spec == "" {
		t.Skip("helper process of TestStatesManyConnections")
	}
	var addr string
	var n int
	if _, err := fmt.Sscanf(strings.Replace(spec, ",", " ", 1), "%s %d", &addr, &n); err != nil {
		t.Fatalf("%s=%q: %v", loadServerEnv, spec, err)
	}
	raiseNoFile(t, uint64(n+1000))
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fmt.Println("listening", ln.Addr())
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(3 * time.Minute))
	conns := make([]net.Conn, 0, n)
	for len(conns) < n {
		c, err := ln.Accept()
		if err != nil {
			t.Fatalf("accept %d of %d: %v", len(conns)+1, n, err)
		}
		conns = append(conns, c)
	}
	fmt.Println("accepted")
	in := bufio.NewScanner(os.Stdin)
	if in.Scan() && in.Text() == "close" {
		for _, c := range conns {
			c.Close()
		}
		fmt.Println("closed")
	}
	in.Scan() // until the test closes stdin
}

// vmHWM is a process's peak resident set, from /proc/PID/status.
func vmHWM(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			return strings.TrimSpace(strings.TrimPrefix(line, "VmHWM:"))
		}
	}
	return "?"
}

// TestStatesManyConnections opens 10,000 concurrent connections between
// two namespaces of its own, then closes them all, with `states` watching.
// Every one of the 20,000 sockets (both ends) reaches CLOSE once, so
// there must be one lifetime record per socket unless `lost` says why
// not: lifetimes + lost >= 20,000, and never more lifetimes than sockets.
// The oracle is the connections the test made, checked against the
// namespaces' own counters (ActiveOpens, PassiveOpens in /proc/net/snmp).
// With a ring buffer that holds the whole test, ring buffer and map
// losses are reachable zeros of the design and must be 0. Recursion: the
// backup program handles every run the kernel skips set_state for
// (measured: misses minus recoveries 0 in every run, with 0-2,300
// skipped runs recovered per run), but `recursion` also counts sockets of other
// processes freed with their CLOSE unseen (tcp_destroy_sock watches the
// whole host), so it is reported, not required to be 0. A gap up to a
// twentieth that no counter sees is logged (see the end of the test).
func TestStatesManyConnections(t *testing.T) {
	testutil.RequirePrivileged(t)
	n := statesLoadConnections(t)
	raiseNoFile(t, uint64(n+1000))
	p := testnet.NewPair(t)
	p.B.Sysctl(t, "net.core.somaxconn", fmt.Sprint(n))
	p.B.Sysctl(t, "net.ipv4.tcp_max_syn_backlog", fmt.Sprint(n))
	// The server ends live in a child process in B: one process may not be
	// allowed 20,000 descriptors.
	srv := startLoadServer(t, p.B, n)
	dst := srv.addr

	proc := p.A.StartTcplens(t, "states", "-o", "json", "--port", fmt.Sprint(dst.Port()),
		"--ring-buffer-bytes", fmt.Sprint(statesLoadRing))
	beforeA, beforeB := snmp(t, p.A), snmp(t, p.B)

	// Connect from a few goroutines at once, each on its own thread in A.
	const workers = 8
	clients := make([][]net.Conn, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			d := net.Dialer{Timeout: 10 * time.Second, KeepAlive: -1}
			errs[w] = p.A.Do(func() error {
				for i := w; i < n; i += workers {
					c, err := d.Dial("tcp", dst.String())
					if err != nil {
						return fmt.Errorf("connection %d of %d: %w", i+1, n, err)
					}
					clients[w] = append(clients[w], c)
				}
				return nil
			})
		}(w)
	}
	wg.Wait()
	defer func() {
		for _, cs := range clients {
			for _, c := range cs {
				c.Close()
			}
		}
	}()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	srv.await(t, "accepted")
	t.Logf("%d connections open; tcplens peak RSS so far %s", n, vmHWM(proc.PID()))

	// Clients close first (FIN_WAIT, then TIME_WAIT), then the servers
	// (LAST_ACK): every full socket reaches CLOSE.
	for _, cs := range clients {
		for _, c := range cs {
			c.Close()
		}
	}
	srv.send(t, "close")
	srv.await(t, "closed")
	// Every client socket ends as a TIME_WAIT socket in A (the clients
	// closed first), every other socket is gone: n sockets in TIME_WAIT
	// and nothing live in two readings in a row (a reading of
	// /proc/net/tcp while sockets change state can skip some, never
	// invent them), so that tcplens stops only after every transition.
	count := func(ns *testnet.NS) (live, timeWait int) {
		socks, err := ns.Sockets()
		if err != nil {
			return -1, 0
		}
		for _, s := range socks {
			switch s.State {
			case testnet.StateTimeWait:
				timeWait++
			case testnet.StateListen:
			default:
				live++
			}
		}
		return live, timeWait
	}
	settled := 0
	testnet.WaitFor(t, time.Minute, "every socket closed, every client in TIME_WAIT", func() bool {
		liveA, twA := count(p.A)
		liveB, _ := count(p.B)
		if liveA == 0 && liveB == 0 && twA >= n {
			settled++
		} else {
			settled = 0
		}
		return settled >= 2
	})
	afterA, afterB := snmp(t, p.A), snmp(t, p.B)
	if a, b := snmpDelta(t, beforeA, afterA, "Tcp:ActiveOpens"), snmpDelta(t, beforeB, afterB, "Tcp:PassiveOpens"); a != uint64(n) || b != uint64(n) {
		t.Fatalf("the namespaces opened %d (active) and %d (passive) connections, the test %d", a, b, n)
	}

	time.Sleep(500 * time.Millisecond) // records reach the reader
	rss := vmHWM(proc.PID())
	res := proc.Stop()
	if res.ExitCode != 0 {
		t.Fatalf("tcplens exited %d: %s", res.ExitCode, res.Stderr)
	}
	recs := res.Records(t)
	port := uint64(dst.Port())
	var lifetimes, clientLives, serverLives int
	seen := map[uint64]bool{} // client ports with a lifetime, per end
	for _, r := range recs {
		if r.Type() != "lifetime" {
			continue
		}
		lifetimes++
		if r.Uint(t, "rport") == port {
			clientLives++
			seen[r.Uint(t, "lport")] = true
		} else if r.Uint(t, "lport") == port {
			serverLives++
			seen[1<<16|r.Uint(t, "rport")] = true
		}
	}
	sum := res.Summary(t, "")
	lost := sum.Uint(t, "lost")
	ring, rec, full := sum.Uint(t, "lost_by_cause.ring_buffer"), sum.Uint(t, "lost_by_cause.recursion"), sum.Uint(t, "lost_by_cause.map_full")
	t.Logf("sockets %d: lifetimes %d (client %d, server %d, distinct %d), lost %d (ring buffer %d, recursion %d, map full %d); tcplens peak RSS %s",
		2*n, lifetimes, clientLives, serverLives, len(seen), lost, ring, rec, full, rss)
	if lifetimes > 2*n || len(seen) != lifetimes {
		t.Errorf("%d lifetimes (%d distinct) for %d sockets", lifetimes, len(seen), 2*n)
	}
	if gap := uint64(2*n) - min(uint64(2*n), uint64(lifetimes)+lost); gap*20 > uint64(2*n) {
		// More than a twentieth: not the gap described below.
		t.Errorf("%d lifetimes + %d lost < %d sockets: %d uncounted", lifetimes, lost, 2*n, gap)
	} else if gap > 0 {
		// Seen in about 1 run of 10 on a busy 6.18 VM, 1-490 client
		// sockets at once: their FIN_WAIT2 and CLOSE transitions (in
		// softirq) reach no BPF program, neither states' raw tracepoint
		// programs nor an independent counting program on the classic
		// tracepoint, and the kernel counts no skipped run for any of
		// them (BENCHMARKS.md, "states with 10,000 concurrent
		// connections"). On kernels before 6.1 and, for classic
		// tracepoint programs, before 6.7 skipped runs are not counted
		// either. No tcplens counter can see what no program ran for.
		t.Logf("%d lifetimes + %d lost < %d sockets: %d state changes no BPF program saw (see BENCHMARKS.md)", lifetimes, lost, 2*n, gap)
	}
	if ring != 0 || full != 0 {
		t.Errorf("lost %d to a full ring buffer and %d to a full map: the design should hold 10,000 connections", ring, full)
	}
}
