package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcplens/tcplens/internal/testnet"
	"github.com/tcplens/tcplens/internal/testutil"
)

// topConn is the part of a `top -o json` conn record the tests check.
type topConn struct {
	Type            string          `json:"type"`
	Time            string          `json:"time"`
	LAddr           string          `json:"laddr"`
	LPort           uint16          `json:"lport"`
	RAddr           string          `json:"raddr"`
	RPort           uint16          `json:"rport"`
	NetNS           uint64          `json:"netns"`
	State           string          `json:"state"`
	ClosedRaw       json.RawMessage `json:"closed"` // a conn's flag, the totals' count
	PID             int             `json:"pid"`
	Comm            string          `json:"comm"`
	Cgroup          string          `json:"cgroup"`
	Verdict         string          `json:"verdict"`
	Reasons         []string        `json:"reasons"`
	RetransInterval uint64          `json:"retrans_interval"`
	AcceptQ         *uint32         `json:"accept_q"`
	Backlog         *uint32         `json:"backlog"`
	// totals
	ListenOverflows uint64   `json:"listen_overflows"`
	ResetsSent      uint64   `json:"resets_sent"`
	ResetsReceived  uint64   `json:"resets_received"`
	Handshakes      uint64   `json:"handshakes"`
	Drops           uint64   `json:"drops"`
	EventsMissing   []string `json:"events_missing"`
	Connections     int      `json:"connections"`
	ListenByNetNS   map[string]struct {
		Overflows uint64 `json:"overflows"`
	} `json:"listen_by_netns"`
}

func (c *topConn) closed() bool { return c.Type == "conn" && string(c.ClosedRaw) == "true" }

func (c *topConn) local() netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr(c.LAddr), c.LPort)
}
func (c *topConn) remote() netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr(c.RAddr), c.RPort)
}

// topRecords parses every whole JSON line printed so far.
func topRecords(t testing.TB, out string) []topConn {
	t.Helper()
	var recs []topConn
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var r topConn
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("top printed a line that is not JSON: %q", sc.Text())
		}
		recs = append(recs, r)
	}
	return recs
}

// nsInode is the inode of a namespace the test made: its netns in top's
// records.
func nsInode(t *testing.T, ns *testnet.NS) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join("/run/netns", ns.Name), &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// verdictsOf lists, in time order, the verdicts top gave the connection
// local->remote in netns (closed ones match on the ends alone: events
// carry no namespace).
func verdictsOf(recs []topConn, netns uint64, local, remote netip.AddrPort) []string {
	var out []string
	for i := range recs {
		r := &recs[i]
		if r.Type != "conn" || (r.NetNS != netns && !(r.closed() && r.NetNS == 0)) {
			continue
		}
		if r.local() == local && r.remote() == remote {
			out = append(out, r.Verdict)
		}
	}
	return out
}

// reasonsOf is verdictsOf's reasons.
func reasonsOf(recs []topConn, netns uint64, local, remote netip.AddrPort) [][]string {
	var out [][]string
	for i := range recs {
		r := &recs[i]
		if r.Type == "conn" && r.NetNS == netns && r.local() == local && r.remote() == remote {
			out = append(out, r.Reasons)
		}
	}
	return out
}

// listenBacklog listens on addr in ns with the given accept backlog and
// never accepts.
func listenBacklog(t *testing.T, ns *testnet.NS, addr netip.AddrPort, backlog int) netip.AddrPort {
	t.Helper()
	var fd int
	err := ns.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrInet4{Port: int(addr.Port()), Addr: addr.Addr().As4()}); err != nil {
			return err
		}
		return unix.Listen(fd, backlog)
	})
	if err != nil {
		t.Fatalf("listen with backlog %d: %v", backlog, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return netip.AddrPortFrom(addr.Addr(), uint16(sa.(*unix.SockaddrInet4).Port))
}

// controlledServer accepts connections whose reading the test controls.
type controlledServer struct {
	addr  netip.AddrPort
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func listenControlled(t *testing.T, ns *testnet.NS) *controlledServer {
	t.Helper()
	s := &controlledServer{}
	err := ns.Do(func() error {
		var err error
		// A small receive buffer (inherited by accepted sockets) keeps the
		// window small: the receiver, not the network, sets the pace.
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 64<<10) })
			return errors.Join(err, serr)
		}}
		s.ln, err = lc.Listen(context.Background(), "tcp", netip.AddrPortFrom(ns.IPv4, 0).String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	s.addr = netip.MustParseAddrPort(s.ln.Addr().String())
	go func() {
		for {
			c, err := s.ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		s.ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
	})
	return s
}

func (s *controlledServer) conn(t *testing.T, i int) net.Conn {
	t.Helper()
	var c net.Conn
	testnet.WaitFor(t, 5*time.Second, "the server to accept", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.conns) > i {
			c = s.conns[i]
			return true
		}
		return false
	})
	return c
}

// writeUntil writes to c until stop closes or the deadline passes, in
// chunks of size, sleeping pause between them.
func writeUntil(c net.Conn, stop <-chan struct{}, deadline time.Time, size int, pause time.Duration) {
	buf := make([]byte, size)
	for time.Now().Before(deadline) {
		select {
		case <-stop:
			return
		default:
		}
		c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		c.Write(buf) // a timeout only means the peer's window is shut
		if pause > 0 {
			time.Sleep(pause)
		}
	}
}

// index is the first position of want in vs at or after from, or -1.
func index(vs []string, want string, from int) int {
	for i := max(from, 0); i < len(vs); i++ {
		if vs[i] == want {
			return i
		}
	}
	return -1
}

// TestTopVerdicts runs every scenario of issue 8 at once beside healthy
// connections and checks each connection's verdicts in top's JSON
// snapshots: a receiver that reads slowly, then stops (receiver-limited,
// then zero-window); a sender that writes a little and sleeps
// (application-limited, never lossy); a bulk transfer whose link goes down
// (lossy, then stalled; in a pair of its own); a listener that never
// accepts (backlog-full, overflows as the namespace's netstat counts them);
// a reset (reset); idle connections (ok throughout).
func TestTopVerdicts(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	p, q := testnet.NewPair(t), testnet.NewPair(t)
	nsA, nsB, nsQA := nsInode(t, p.A), nsInode(t, p.B), nsInode(t, q.A)
	srv := p.B.Listen(t, testnet.IPv4, 0)
	srv6 := p.B.Listen(t, testnet.IPv6, 0)
	slow := listenControlled(t, p.B)
	bulkSrv := q.B.Listen(t, testnet.IPv4, 0)
	backlog := listenBacklog(t, p.B, netip.AddrPortFrom(p.B.IPv4, 0), 1)
	before := snmp(t, p.B)

	// Only the sources the checks need: each costs start-up time, which
	// matters under emulation (the kernel matrix).
	tl := p.A.StartTcplens(t, "top", "-o", "json", "--interval", "200ms", "--tcp-info", "--events", "resets,states,drops")
	start := time.Now()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(stop); wg.Wait() }()
	goWrite := func(c net.Conn, size int, pause time.Duration) {
		wg.Add(1)
		go func() { defer wg.Done(); writeUntil(c, stop, start.Add(8*time.Second), size, pause) }()
	}

	idle := p.A.OpenConns(t, srv.Addr, 1)[0]
	idle6 := p.A.OpenConns(t, srv6.Addr, 1)[0]
	app := p.A.OpenConns(t, srv.Addr, 1)[0]
	goWrite(app, 100, 50*time.Millisecond)
	recv := p.A.OpenConns(t, slow.addr, 1)[0]
	goWrite(recv, 64<<10, 0)
	slowEnd := slow.conn(t, 0)
	wg.Add(1)
	// The receiver reads all it can through a 64 KiB buffer for 2.5 s
	// (a window that small limits the sender: receiver-limited), then
	// nothing (zero-window).
	go func() {
		defer wg.Done()
		buf := make([]byte, 16<<10)
		for time.Since(start) < 2500*time.Millisecond {
			slowEnd.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			slowEnd.Read(buf)
		}
	}()
	// Paced (~30 MB/s), so that its receiver, however late a loaded
	// machine runs it, keeps the window open: whenever the link goes
	// down, the next write puts data in flight that the link loses.
	bulk := q.A.OpenConns(t, bulkSrv.Addr, 1)[0]
	goWrite(bulk, 64<<10, 2*time.Millisecond)
	reset := p.A.OpenConns(t, srv.Addr, 1)[0]
	// More connections than the backlog holds: the listener never accepts.
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if c, err := p.A.Dial(backlog, 2*time.Second); err == nil {
				<-stop
				c.Close()
			}
		}()
	}

	time.Sleep(time.Second)
	q.B.SetLink(t, false)
	t.Cleanup(func() { q.B.SetLink(t, true) })
	if err := reset.SetLinger0(); err != nil {
		t.Fatal(err)
	}
	reset.Close() // an abort: A sends a reset, B receives it
	time.Sleep(4500 * time.Millisecond)
	res := tl.Stop()
	after := snmp(t, p.B)
	recs := topRecords(t, res.Stdout)
	if len(recs) == 0 {
		t.Fatalf("no records; stderr: %s", res.Stderr)
	}
	// TCPLENS_TOP_RECORD=DIR keeps each scenario's TCP_INFO series, the
	// source of internal/conn's table tests (testdata/series).
	if dir := os.Getenv("TCPLENS_TOP_RECORD"); dir != "" {
		for name, c := range map[string]struct {
			ns   uint64
			conn *testnet.Conn
		}{"idle": {nsA, idle}, "application-limited": {nsA, app}, "receiver": {nsA, recv}, "link-down": {nsQA, bulk}} {
			recordSeries(t, filepath.Join(dir, name+".jsonl"), res.Stdout, c.ns, c.conn)
		}
	}

	check := func(name string, vs []string, allowed ...string) {
		t.Helper()
		if len(vs) == 0 {
			t.Errorf("%s: never seen", name)
			return
		}
		for _, v := range vs {
			ok := false
			for _, a := range allowed {
				ok = ok || v == a
			}
			if !ok {
				t.Errorf("%s: verdict %s among %v, want only %v", name, v, vs, allowed)
				return
			}
		}
		t.Logf("%s: %v", name, vs)
	}
	check("idle", verdictsOf(recs, nsA, idle.Local, idle.Remote), "ok")
	check("idle IPv6", verdictsOf(recs, nsA, idle6.Local, idle6.Remote), "ok")
	check("idle, server end", verdictsOf(recs, nsB, idle.Remote, idle.Local), "ok")
	appV := verdictsOf(recs, nsA, app.Local, app.Remote)
	check("application-limited", appV, "ok", "application-limited")
	if index(appV, "application-limited", 0) < 0 {
		t.Errorf("application-limited sender: never application-limited: %v", appV)
	}
	check("application-limited, server end", verdictsOf(recs, nsB, app.Remote, app.Local), "ok")

	recvV := verdictsOf(recs, nsA, recv.Local, recv.Remote)
	// A receiver that stops reading can overrun its small buffer: it then
	// drops segments and the sender retransmits them. lossy is the truth
	// then, and allowed only where retransmissions back it.
	check("receiver", recvV, "ok", "receiver-limited", "zero-window", "lossy")
	for _, r := range recs {
		if r.Type == "conn" && r.NetNS == nsA && r.local() == recv.Local && r.Verdict == "lossy" && r.RetransInterval == 0 {
			t.Errorf("receiver: lossy without a retransmission in the interval: %v", r.Reasons)
		}
	}
	rl := index(recvV, "receiver-limited", 0)
	if rl < 0 || index(recvV, "zero-window", rl) < 0 {
		t.Errorf("slow then stopped receiver: want receiver-limited, then zero-window: %v", recvV)
	}
	check("receiver, reading end", verdictsOf(recs, nsB, recv.Remote, recv.Local), "ok")

	bulkV := verdictsOf(recs, nsQA, bulk.Local, bulk.Remote)
	// Before the link goes down a busy 2-core machine may not feed the
	// sender all the time: application-limited is then the truth.
	check("link down", bulkV, "ok", "application-limited", "receiver-limited", "send-buffer-limited", "lossy", "stalled")
	// Lossy, then stalled: a refresh that a loaded machine delays may
	// find the first timeout and the second at once; stalled is then the
	// verdict and lossy one of its reasons.
	bulkR := reasonsOf(recs, nsQA, bulk.Local, bulk.Remote)
	lossy := -1
	for i, rs := range bulkR {
		for _, r := range rs {
			if strings.HasPrefix(r, "lossy:") && lossy < 0 {
				lossy = i
			}
		}
	}
	if lossy < 0 || index(bulkV, "stalled", lossy) < 0 {
		t.Errorf("bulk transfer with its link down: want lossy, then stalled: %v %v", bulkV, bulkR)
	}

	lnV := verdictsOf(recs, nsB, backlog, netip.AddrPortFrom(netip.IPv4Unspecified(), 0))
	check("listener that never accepts", lnV, "ok", "backlog-full")
	if index(lnV, "backlog-full", 0) < 0 {
		t.Errorf("listener that never accepts: never backlog-full: %v", lnV)
	}
	// The listener's namespace's own overflows, not the host's: other
	// tests' listeners overflow too.
	var overflows, hostOverflows, handshakes, drops uint64
	for _, r := range recs {
		if r.Type == "totals" {
			overflows += r.ListenByNetNS[fmt.Sprint(nsB)].Overflows
			hostOverflows += r.ListenOverflows
			handshakes += r.Handshakes
			drops += r.Drops
		}
	}
	// Handshakes: at least both ends of the test's own six connections
	// (the states tracepoint sees every namespace, so others' count too),
	// where this kernel has what the states source needs.
	missing := ""
	for _, r := range recs {
		if r.Type == "totals" {
			missing = strings.Join(r.EventsMissing, "; ")
		}
	}
	if strings.Contains(missing, "states:") {
		t.Logf("no handshake check: %s", missing)
	} else if handshakes < 12 {
		t.Errorf("%d handshakes in the header, want at least the test's 12", handshakes)
	}
	// The listener's overflows are drops the kernel makes (skb:kfree_skb).
	if d := snmpDelta(t, before, after, "TcpExt:ListenDrops"); d > 0 && drops == 0 && !strings.Contains(missing, "drops:") {
		t.Errorf("no drops in the header, though the namespace counted %d listen drops", d)
	}
	want := snmpDelta(t, before, after, "TcpExt:ListenOverflows")
	// top reads the namespace's counter at its last refresh, up to an
	// interval before the test reads it after the stop: a SYN the kernel
	// turned away in between is in the test's count only (7 against 8 once
	// on 6.1 under qemu).
	// top's first snapshot, its baseline, comes after the test's first
	// reading, and nothing overflows before it: top can count no more.
	if want == 0 || overflows+max(1, want/10) < want || overflows > want || hostOverflows < overflows {
		t.Errorf("listen overflows in the listener's namespace: top counted %d (%d on the host), the namespace's netstat %d (want > 0, and top within a refresh of it, never above)", overflows, hostOverflows, want)
	}

	resetV := verdictsOf(recs, nsA, reset.Local, reset.Remote)
	if index(resetV, "reset", 0) < 0 {
		t.Errorf("aborted connection: never reset: %v", resetV)
	}
	resetB := verdictsOf(recs, nsB, reset.Remote, reset.Local)
	if index(resetB, "reset", 0) < 0 {
		t.Errorf("aborted connection, receiving end: never reset: %v", resetB)
	}
}

// recordSeries writes the conn records of one connection, as printed.
func recordSeries(t *testing.T, path, stdout string, netns uint64, c *testnet.Conn) {
	t.Helper()
	var out []byte
	for _, line := range strings.Split(stdout, "\n") {
		var r topConn
		if json.Unmarshal([]byte(line), &r) != nil || r.Type != "conn" || r.NetNS != netns ||
			r.local() != c.Local || r.remote() != c.Remote {
			continue
		}
		out = append(out, line+"\n"...)
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// The tests start helper processes from their own binary: the server and
// client whose sockets top must attribute to them.
func init() {
	switch os.Getenv("TCPLENS_TOP_HELPER") {
	case "listen":
		os.Exit(helperListen())
	case "dial":
		os.Exit(helperDial(os.Getenv("TCPLENS_TOP_DIAL")))
	}
}

// helperListen listens dual-stack on [::], prints its port, holds every
// connection, and exits when stdin closes.
func helperListen() int {
	ln, err := net.Listen("tcp", "[::]:0")
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	fmt.Println(ln.Addr().(*net.TCPAddr).Port)
	var held []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// helperDial connects to addr, says so, and exits when stdin closes.
func helperDial(addr string) int {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	fmt.Println(c.LocalAddr())
	io.Copy(io.Discard, os.Stdin)
	c.Close()
	return 0
}

// startHelper runs this binary as a helper in ns and returns its process
// and first line; it is ended by its PID when the test ends.
func startHelper(t *testing.T, ns *testnet.NS, env ...string) (*exec.Cmd, string) {
	t.Helper()
	cmd := ns.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- strings.TrimSpace(l)
	}()
	select {
	case l := <-line:
		if strings.HasPrefix(l, "error") || l == "" {
			t.Fatalf("helper %v: %q", env, l)
		}
		return cmd, l
	case <-time.After(10 * time.Second):
		t.Fatalf("helper %v: no answer in 10 s", env)
	}
	return nil, ""
}

// childCgroup makes a cgroup v2 child under the hierarchy's root and moves
// pid into it; when the test ends pid goes back to the root and the child
// is removed.
func childCgroup(t *testing.T, pid int) string {
	t.Helper()
	root := ""
	mounts, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(mounts), "\n") {
		if f := strings.Fields(l); len(f) > 2 && f[2] == "cgroup2" {
			root = f[1]
			break
		}
	}
	if root == "" {
		t.Fatal("no cgroup2 hierarchy mounted")
	}
	name := fmt.Sprintf("tcplens-top-test-%d", os.Getpid())
	dir := filepath.Join(root, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.WriteFile(filepath.Join(root, "cgroup.procs"), []byte(fmt.Sprint(pid)), 0o644) // fails if it is gone
		testnet.WaitFor(t, 5*time.Second, "cgroup "+dir+" removed", func() bool { return os.Remove(dir) == nil })
	})
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(fmt.Sprint(pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	return "/" + name
}

// ssSockets is `ss -tanH` in ns: "STATE local remote" with addresses as
// top prints them (v4-mapped as IPv4, ss's * as the unspecified address).
func ssSockets(t *testing.T, ns *testnet.NS) map[string]bool {
	t.Helper()
	out := ns.Run(t, "ss", "-tanH")
	states := map[string]string{"ESTAB": "ESTABLISHED", "LISTEN": "LISTEN", "TIME-WAIT": "TIME_WAIT", "SYN-SENT": "SYN_SENT",
		"SYN-RECV": "SYN_RECV", "FIN-WAIT-1": "FIN_WAIT1", "FIN-WAIT-2": "FIN_WAIT2", "CLOSE-WAIT": "CLOSE_WAIT",
		"LAST-ACK": "LAST_ACK", "CLOSING": "CLOSING"}
	ep := func(s string) string {
		i := strings.LastIndexByte(s, ':')
		host, port := strings.Trim(s[:i], "[]"), s[i+1:]
		if i := strings.IndexByte(host, '%'); i >= 0 {
			host = host[:i]
		}
		switch host {
		case "*":
			host = "::"
		}
		if port == "*" {
			port = "0"
		}
		a := netip.MustParseAddr(host).Unmap()
		return netip.AddrPortFrom(a, uint16(mustAtoi(t, port))).String()
	}
	set := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l)
		if len(f) < 5 {
			continue
		}
		set[states[f[0]]+" "+ep(f[3])+" "+ep(f[4])] = true
	}
	return set
}

func mustAtoi(t *testing.T, s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return n
}

// TestTopMatchesSSAndOwners checks one `top -o json` snapshot against `ss
// -tan` in both namespaces (every socket, same ends and states: a
// dual-stack listener's IPv4 clients as IPv4, TIME_WAIT sockets too), and
// the owners of the sockets of a server and a client the test started as
// processes, the client in a cgroup the test made.
func TestTopMatchesSSAndOwners(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	p := testnet.NewPair(t)
	srv, port := startHelper(t, p.B, "TCPLENS_TOP_HELPER=listen")
	dst := netip.AddrPortFrom(p.B.IPv4, uint16(mustAtoi(t, port)))
	cli, local := startHelper(t, p.A, "TCPLENS_TOP_HELPER=dial", "TCPLENS_TOP_DIAL="+dst.String())
	cgroup := childCgroup(t, cli.Process.Pid)
	cliLocal := netip.MustParseAddrPort(local)
	// IPv6 clients and TIME_WAIT sockets: this process's own.
	p.A.OpenConns(t, netip.AddrPortFrom(p.B.IPv6, dst.Port()), 2)
	for _, c := range p.A.OpenConns(t, dst, 2) {
		c.Close() // the client closes first: TIME_WAIT in A
	}
	time.Sleep(200 * time.Millisecond) // the closes' FINs and ACKs

	res := p.A.RunTcplens(t, "top", "-o", "json", "-c", "1", "--interval", "100ms", "--no-events")
	if res.ExitCode != 0 {
		t.Fatalf("top exited %d: %s", res.ExitCode, res.Stderr)
	}
	recs := topRecords(t, res.Stdout)
	for _, ns := range []*testnet.NS{p.A, p.B} {
		ino := nsInode(t, ns)
		want := ssSockets(t, ns)
		got := map[string]bool{}
		for _, r := range recs {
			if r.Type == "conn" && r.NetNS == ino && !r.closed() {
				got[r.State+" "+r.local().String()+" "+r.remote().String()] = true
			}
		}
		for k := range want {
			if !got[k] {
				t.Errorf("%s: ss has %s, top does not", ns.Name, k)
			}
		}
		for k := range got {
			if !want[k] {
				t.Errorf("%s: top has %s, ss does not", ns.Name, k)
			}
		}
		if len(want) < 4 {
			t.Errorf("%s: only %d sockets: %v", ns.Name, len(want), want)
		}
	}
	comm := filepath.Base(os.Args[0])
	if len(comm) > 15 {
		comm = comm[:15]
	}
	var sawServer, sawListener, sawClient bool
	inoA, inoB := nsInode(t, p.A), nsInode(t, p.B)
	for _, r := range recs {
		switch {
		case r.NetNS == inoB && r.State == "LISTEN" && r.LPort == dst.Port():
			sawListener = true
			if r.PID != srv.Process.Pid || r.Comm != comm {
				t.Errorf("listener owned by %d/%s, want %d/%s", r.PID, r.Comm, srv.Process.Pid, comm)
			}
		case r.NetNS == inoB && r.State == "ESTABLISHED" && r.remote() == cliLocal:
			sawServer = true
			if r.PID != srv.Process.Pid {
				t.Errorf("server's connection owned by %d, want %d", r.PID, srv.Process.Pid)
			}
			if r.LAddr != p.B.IPv4.String() {
				t.Errorf("dual-stack server's IPv4 connection shows local %s, want %s", r.LAddr, p.B.IPv4)
			}
		case r.NetNS == inoA && r.State == "ESTABLISHED" && r.local() == cliLocal:
			sawClient = true
			if r.PID != cli.Process.Pid || r.Cgroup != cgroup {
				t.Errorf("client's connection owned by %d in %q, want %d in %q", r.PID, r.Cgroup, cli.Process.Pid, cgroup)
			}
		}
	}
	if !sawServer || !sawListener || !sawClient {
		t.Errorf("server %v listener %v client %v seen, want all", sawServer, sawListener, sawClient)
	}
}

// tmux runs a tmux command, failing the test on error.
func tmux(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("tmux", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("tmux %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestTopScreen runs `top` full screen in a tmux pane: it shows the
// scenario's listener with its verdict, sorts on another key when s is
// pressed, and on q exits 0 and leaves the alternate screen.
func TestTopScreen(t *testing.T) {
	testutil.RequirePrivileged(t)
	if _, err := exec.LookPath("tmux"); err != nil {
		if os.Getenv("TCPLENS_REQUIRE_PRIVILEGED") == "1" {
			t.Fatal("tmux not installed (.ci/run installs it)")
		}
		t.Skip("no tmux")
	}
	t.Parallel()
	p := testnet.NewPair(t)
	ln := listenBacklog(t, p.B, netip.AddrPortFrom(p.B.IPv4, 0), 1)
	for i := 0; i < 4; i++ {
		go func() {
			if c, err := p.A.Dial(ln, 2*time.Second); err == nil {
				time.Sleep(10 * time.Second)
				c.Close()
			}
		}()
	}
	bin := testnet.Tcplens(t)
	session := fmt.Sprintf("tcplens-top-%d", os.Getpid())
	tmux(t, "new-session", "-d", "-s", session, "-x", "200", "-y", "50")
	t.Cleanup(func() { exec.Command("tmux", "kill-session", "-t", session).Run() })
	tmux(t, "set-option", "-t", session, "remain-on-exit", "on")
	tmux(t, "respawn-pane", "-k", "-t", session, fmt.Sprintf("ip netns exec %s %s top --no-events --interval 200ms --port %d", p.A.Name, bin, ln.Port()))
	screen := func() string { return tmux(t, "capture-pane", "-p", "-t", session) }
	var last string
	waitScreen := func(what string, cond func(s string) bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			last = screen()
			if cond(last) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("screen never showed %s; it shows:\n%s", what, last)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	row := regexpMust(fmt.Sprintf(`%s\s+0\.0\.0\.0:0\s+LISTEN\s.*backlog-full`, regexpQuote(ln.String())))
	waitScreen("the listener with verdict backlog-full", func(s string) bool { return row.MatchString(s) })
	if !strings.Contains(last, "sort: verdict") {
		t.Errorf("no sort status on the screen:\n%s", last)
	}
	tmux(t, "send-keys", "-t", session, "s")
	waitScreen("sort: tx after s", func(s string) bool { return strings.Contains(s, "sort: tx") })
	tmux(t, "send-keys", "-t", session, "q")
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := strings.Fields(tmux(t, "display", "-p", "-t", session, "#{pane_dead} #{pane_dead_status} #{alternate_on}"))
		if len(st) >= 1 && st[0] == "1" {
			// Some tmux builds print nothing for alternate_on once the pane is dead.
			if len(st) < 2 || st[1] != "0" || (len(st) == 3 && st[2] != "0") {
				t.Errorf("after q: pane_dead pane_dead_status alternate_on = %v, want 1 0 0", st)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("top still running 10 s after q:\n%s", screen())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if row.MatchString(screen()) {
		t.Errorf("the table is still on the screen after q:\n%s", screen())
	}
}

func regexpMust(s string) *regexp.Regexp { return regexp.MustCompile(s) }
func regexpQuote(s string) string        { return regexp.QuoteMeta(s) }

// childCost runs cmd to completion and returns its CPU time (user+system)
// and peak resident memory. The peak is the child's own VmHWM, polled
// from /proc while it runs: wait4's ru_maxrss is no good here, since Go
// starts a child with vfork semantics (CLONE_VM) and the kernel folds the
// parent's high-water mark in at exec, so a big test process (10,000
// sockets of its own) would show as the child's peak.
func childCost(b *testing.B, cmd *exec.Cmd) (time.Duration, int64) {
	b.Helper()
	if cmd.Stdout == nil {
		cmd.Stdout = io.Discard
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		b.Fatalf("%s: %v", strings.Join(cmd.Args, " "), err)
	}
	done := make(chan struct{})
	peak := make(chan int64)
	go func() {
		var hwm int64
		status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
		for {
			if st, err := os.ReadFile(status); err == nil {
				for _, l := range strings.Split(string(st), "\n") {
					if f := strings.Fields(l); len(f) == 3 && f[0] == "VmHWM:" {
						if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil {
							hwm = max(hwm, kb*1024)
						}
					}
				}
			}
			select {
			case <-done:
				peak <- hwm
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	err := cmd.Wait()
	close(done)
	hwm := <-peak
	if err != nil {
		b.Fatalf("%s: %v", strings.Join(cmd.Args, " "), err)
	}
	return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), hwm
}

// BenchmarkTopRefresh measures what one `top` refresh costs with 1,000
// and 10,000 open connections between two namespaces, against `ss -tainp`
// gathering the same snapshot (every TCP socket with TCP_INFO and its
// process) in both namespaces. top's cost per refresh is the difference
// between a run of 11 refreshes and a run of 1, so its start is left out;
// ss's is the CPU time of the two runs. top reads every namespace on the
// host, ss only the two. Run with -benchtime 1x:
//
//	go test -run '^$' -bench TopRefresh -benchtime 1x ./test/integration/
func BenchmarkTopRefresh(b *testing.B) {
	testutil.RequirePrivileged(b)
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("conns=%d", n), func(b *testing.B) {
			p := testnet.NewPair(b)
			// The server is a process of its own: both ends of 10,000
			// connections would pass this process's descriptor limit.
			srvCmd := p.B.Command(os.Args[0], "-test.run=^$")
			srvCmd.Env = append(os.Environ(), "TCPLENS_TOP_HELPER=listen")
			stdin, _ := srvCmd.StdinPipe()
			stdout, _ := srvCmd.StdoutPipe()
			if err := srvCmd.Start(); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { stdin.Close(); srvCmd.Wait() })
			line, _ := bufio.NewReader(stdout).ReadString('\n')
			port, err := strconv.Atoi(strings.TrimSpace(line))
			if err != nil {
				b.Fatalf("server helper: %q", line)
			}
			p.A.OpenConns(b, netip.AddrPortFrom(p.B.IPv4, uint16(port)), n)
			testnet.WaitFor(b, 30*time.Second, "every connection accepted", func() bool {
				return p.B.CountSockets(1) >= n
			})
			bin := testnet.Tcplens(b)
			// top reads every namespace on the host: other tests' sockets
			// count too, so the figures say how many it saw.
			var seen int
			top := func(count int) (time.Duration, int64) {
				cmd := exec.Command(bin, "top", "-o", "json", "--no-events", "--interval", "100ms", "-c", fmt.Sprint(count))
				var out bytes.Buffer
				cmd.Stdout = &out
				cpu, rss := childCost(b, cmd)
				for _, r := range topRecords(b, out.String()) {
					if r.Type == "totals" {
						seen = max(seen, r.Connections)
					}
				}
				return cpu, rss
			}
			var topCPU, ssCPU time.Duration
			var rss int64
			for i := 0; i < b.N; i++ {
				one, _ := top(1)
				eleven, r := top(11)
				topCPU += (eleven - one) / 10
				rss = max(rss, r)
				for _, ns := range []*testnet.NS{p.A, p.B} {
					c, _ := childCost(b, ns.Command("ss", "-tainp"))
					ssCPU += c
				}
			}
			topMS := float64(topCPU.Microseconds()) / 1e3 / float64(b.N)
			ssMS := float64(ssCPU.Microseconds()) / 1e3 / float64(b.N)
			b.ReportMetric(topMS, "top-cpu-ms/refresh")
			b.ReportMetric(ssMS, "ss-cpu-ms/snapshot")
			b.ReportMetric(topMS/ssMS, "top/ss")
			b.ReportMetric(float64(rss)/(1<<20), "top-maxrss-MiB")
			b.ReportMetric(float64(seen), "sockets-seen")
		})
	}
}
