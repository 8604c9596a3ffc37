package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
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
	ListenOverflows uint64 `json:"listen_overflows"`
	ResetsSent      uint64 `json:"resets_sent"`
	ResetsReceived  uint64 `json:"resets_received"`
}

func (c *topConn) closed() bool { return c.Type == "conn" && string(c.ClosedRaw) == "true" }

func (c *topConn) local() netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr(c.LAddr), c.LPort)
}
func (c *topConn) remote() netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr(c.RAddr), c.RPort)
}

// topRecords parses every whole JSON line printed so far.
func topRecords(t *testing.T, out string) []topConn {
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
			err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<10) })
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

	tl := p.A.StartTcplens(t, "top", "-o", "json", "--interval", "200ms", "--tcp-info")
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
	go func() { // reads all it can through a small window for 2.5 s, then nothing
		defer wg.Done()
		buf := make([]byte, 4<<10)
		for time.Since(start) < 2500*time.Millisecond {
			slowEnd.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			slowEnd.Read(buf)
		}
	}()
	bulk := q.A.OpenConns(t, bulkSrv.Addr, 1)[0]
	goWrite(bulk, 64<<10, 0)
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
	check("receiver", recvV, "ok", "receiver-limited", "zero-window")
	rl := index(recvV, "receiver-limited", 0)
	if rl < 0 || index(recvV, "zero-window", rl) < 0 {
		t.Errorf("slow then stopped receiver: want receiver-limited, then zero-window: %v", recvV)
	}
	check("receiver, reading end", verdictsOf(recs, nsB, recv.Remote, recv.Local), "ok")

	bulkV := verdictsOf(recs, nsQA, bulk.Local, bulk.Remote)
	// Before the link goes down a busy 2-core machine may not feed the
	// sender all the time: application-limited is then the truth.
	check("link down", bulkV, "ok", "application-limited", "receiver-limited", "send-buffer-limited", "lossy", "stalled")
	if l := index(bulkV, "lossy", 0); l < 0 || index(bulkV, "stalled", l) < 0 {
		t.Errorf("bulk transfer with its link down: want lossy, then stalled: %v", bulkV)
	}

	lnV := verdictsOf(recs, nsB, backlog, netip.AddrPortFrom(netip.IPv4Unspecified(), 0))
	check("listener that never accepts", lnV, "ok", "backlog-full")
	if index(lnV, "backlog-full", 0) < 0 {
		t.Errorf("listener that never accepts: never backlog-full: %v", lnV)
	}
	var overflows uint64
	for _, r := range recs {
		if r.Type == "totals" {
			overflows += r.ListenOverflows
		}
	}
	want := snmpDelta(t, before, after, "TcpExt:ListenOverflows")
	if want == 0 || overflows < want {
		t.Errorf("listen overflows: top counted %d, the namespace's netstat %d (want > 0, and top at least as many)", overflows, want)
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
