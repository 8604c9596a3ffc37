package integration

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tcplens/tcplens/internal/probe"
	"github.com/tcplens/tcplens/internal/testnet"
	"github.com/tcplens/tcplens/internal/testutil"
)

// The socket-path filters run in the kernel (bpf/sock_common.h). These
// tests load them with each shape through the real commands and make real
// connections; the oracle is the connections the test made: their
// 4-tuples as the test's own sockets know them. Tracepoints see every
// namespace, so other tests' traffic may show up too: a test looks for
// its own tuples, and checks that every record printed obeys the filter.

// endRecords keeps the records of type typ (any type when empty) whose
// local and remote ends are local and remote.
func endRecords(t *testing.T, recs []testnet.Record, typ string, local, remote netip.AddrPort) []testnet.Record {
	t.Helper()
	var out []testnet.Record
	for _, r := range recs {
		if r.Type() == "summary" || (typ != "" && r.Type() != typ) {
			continue
		}
		if r.String(t, "laddr") == local.Addr().String() && r.Uint(t, "lport") == uint64(local.Port()) &&
			r.String(t, "raddr") == remote.Addr().String() && r.Uint(t, "rport") == uint64(remote.Port()) {
			out = append(out, r)
		}
	}
	return out
}

// everyRecord checks that every record but the summary satisfies ok.
func everyRecord(t *testing.T, what string, recs []testnet.Record, ok func(laddr, raddr string, lport, rport uint64) bool) {
	t.Helper()
	n := 0
	for _, r := range recs {
		if r.Type() == "summary" {
			continue
		}
		n++
		if !ok(r.String(t, "laddr"), r.String(t, "raddr"), r.Uint(t, "lport"), r.Uint(t, "rport")) {
			t.Errorf("%s: a record outside the filter: %v", what, r)
		}
	}
	if n == 0 {
		t.Errorf("%s: no records at all", what)
	}
}

// listenOn listens on addr ("ip:0") in ns and accepts and closes every
// connection in the background, reading until EOF.
func listenOn(t *testing.T, ns *testnet.NS, network, addr string) netip.AddrPort {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() (err error) { ln, err = net.Listen(network, addr); return err }); err != nil {
		t.Fatalf("listen on %s in %s: %v", addr, ns.Name, err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				buf := make([]byte, 4096)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
	return netip.MustParseAddrPort(ln.Addr().String())
}

// dialAndClose makes one whole connection from ns to dst: connect, send a
// little, close both ways.
func dialAndClose(t *testing.T, ns *testnet.NS, dst netip.AddrPort) *testnet.Conn {
	t.Helper()
	c, err := ns.Dial(dst, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", dst, err)
	}
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	testnet.CloseConns(t, []*testnet.Conn{c})
	return c
}

// TestFilterPortsAnyOf: --port given twice sees the connections to both
// ports, from both ends, and none to a third port.
func TestFilterPortsAnyOf(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	p := testnet.NewPair(t)
	s1, s2, s3 := p.B.Listen(t, testnet.IPv4, 0), p.B.Listen(t, testnet.IPv6, 0), p.B.Listen(t, testnet.IPv4, 0)
	want := map[uint64]bool{uint64(s1.Addr.Port()): true, uint64(s2.Addr.Port()): true}
	tl := p.A.StartTcplens(t, "states", "-o", "json", "--port", fmt.Sprint(s1.Addr.Port()), "--port", fmt.Sprint(s2.Addr.Port()))
	c1, c2, c3 := dialAndClose(t, p.A, s1.Addr), dialAndClose(t, p.A, s2.Addr), dialAndClose(t, p.A, s3.Addr)
	time.Sleep(300 * time.Millisecond)
	recs := tl.Stop().Records(t)

	for _, c := range []*testnet.Conn{c1, c2} {
		if n := len(endRecords(t, recs, "state", c.Local, c.Remote)); n == 0 {
			t.Errorf("%s: no transitions of the client's end", c)
		}
		if n := len(endRecords(t, recs, "state", c.Remote, c.Local)); n == 0 {
			t.Errorf("%s: no transitions of the server's end", c)
		}
	}
	if n := len(endRecords(t, recs, "", c3.Local, c3.Remote)) + len(endRecords(t, recs, "", c3.Remote, c3.Local)); n != 0 {
		t.Errorf("%s: %d records of a connection to a port not asked for", c3, n)
	}
	everyRecord(t, "--port twice", recs, func(_, _ string, lport, rport uint64) bool { return want[lport] || want[rport] })
}

// TestFilterLocalRemotePorts: --lport matches this host's end only and
// --rport the remote end only, in states (a socket's own addresses), in
// resets (a reset sent without a socket is addressed from the packet,
// turned around) and in drops (a packet that arrived: local is its
// destination). Both ends of a connection are on this machine, in two
// namespaces, so each filter must see one end and not the other.
func TestFilterLocalRemotePorts(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	p := testnet.NewPair(t)
	srv := p.B.Listen(t, testnet.IPv4, 0)
	sp := fmt.Sprint(srv.Addr.Port())
	closed := closedPort(t, p.B, testnet.IPv4)
	cp := fmt.Sprint(closed.Port())
	run := map[string]*testnet.Process{
		"states --lport": p.A.StartTcplens(t, "states", "-o", "json", "--lport", sp),
		"states --rport": p.A.StartTcplens(t, "states", "-o", "json", "--rport", sp),
		"states --port":  p.A.StartTcplens(t, "states", "-o", "json", "--port", sp),
		"resets --lport": p.A.StartTcplens(t, "resets", "-o", "json", "--lport", cp),
		"resets --rport": p.A.StartTcplens(t, "resets", "-o", "json", "--rport", cp),
		"drops --lport":  p.A.StartTcplens(t, "drops", "-o", "json", "--lport", cp),
	}
	c := dialAndClose(t, p.A, srv.Addr)
	// A connection to a closed port: B answers with a reset from no
	// socket and drops the SYN (NO_SOCKET); A receives the reset.
	client := closedPort(t, p.A, testnet.IPv4)
	err := p.A.Do(func() error {
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: net.TCPAddrFromAddrPort(client)}
		conn, err := d.Dial("tcp", closed.String())
		if err == nil {
			conn.Close()
			return fmt.Errorf("connected to %s, want refused", closed)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	recs := map[string][]testnet.Record{}
	for name, proc := range run {
		recs[name] = proc.Stop().Records(t)
	}

	server, cli := len(endRecords(t, recs["states --lport"], "state", c.Remote, c.Local)), len(endRecords(t, recs["states --lport"], "state", c.Local, c.Remote))
	if server == 0 || cli != 0 {
		t.Errorf("states --lport %s: %d transitions of the server's end (want some), %d of the client's (want 0)", sp, server, cli)
	}
	server, cli = len(endRecords(t, recs["states --rport"], "state", c.Remote, c.Local)), len(endRecords(t, recs["states --rport"], "state", c.Local, c.Remote))
	if server != 0 || cli == 0 {
		t.Errorf("states --rport %s: %d transitions of the server's end (want 0), %d of the client's (want some)", sp, server, cli)
	}
	server, cli = len(endRecords(t, recs["states --port"], "state", c.Remote, c.Local)), len(endRecords(t, recs["states --port"], "state", c.Local, c.Remote))
	if server == 0 || cli == 0 {
		t.Errorf("states --port %s: %d transitions of the server's end, %d of the client's; want both", sp, server, cli)
	}
	port, cport := uint64(srv.Addr.Port()), uint64(closed.Port())
	everyRecord(t, "states --lport", recs["states --lport"], func(_, _ string, l, _ uint64) bool { return l == port })
	everyRecord(t, "states --rport", recs["states --rport"], func(_, _ string, _, r uint64) bool { return r == port })

	// The reset a closed port sends has no socket. Kernels before 6.10
	// (the release that added enum sk_rst_reason, our probe for it) do
	// not fire tcp:tcp_send_reset without a socket (measured on 6.1 under
	// qemu), so there --lport can only show that nothing else leaks in.
	_, noSocketResetsTraced := probe.ResetReasons()
	if noSocketResetsTraced == nil {
		if sent := endRecords(t, recs["resets --lport"], "reset", closed, client); len(sent) != 1 || sent[0].String(t, "direction") != "sent" {
			t.Errorf("resets --lport %s: want B's one sent reset, got %v", cp, sent)
		}
	} else {
		t.Logf("kernel without enum sk_rst_reason: resets without a socket are not traced; %d records with --lport", len(recs["resets --lport"]))
	}
	if got := endRecords(t, recs["resets --rport"], "reset", client, closed); len(got) != 1 || got[0].String(t, "direction") != "received" {
		t.Errorf("resets --rport %s: want A's one received reset, got %v", cp, got)
	}
	if noSocketResetsTraced == nil {
		everyRecord(t, "resets --lport", recs["resets --lport"], func(_, _ string, l, _ uint64) bool { return l == cport })
	}
	everyRecord(t, "resets --rport", recs["resets --rport"], func(_, _ string, _, r uint64) bool { return r == cport })

	if n := len(endRecords(t, recs["drops --lport"], "drop", closed, client)); n == 0 {
		t.Errorf("drops --lport %s: B's drop of the SYN to its closed port is missing", cp)
	}
	everyRecord(t, "drops --lport", recs["drops --lport"], func(_, _ string, l, _ uint64) bool { return l == cport })
}

// TestFilterHostsAnyOf: --host given three times (two IPv4 prefixes and an
// IPv6 address) sees connections to each, and not one to an address in
// none of them. Loopback in one namespace gives the addresses: all of
// 127.0.0.0/8 is local, and a client's source is 127.0.0.1.
func TestFilterHostsAnyOf(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	p := testnet.NewPair(t)
	v4 := listenOn(t, p.B, "tcp4", "0.0.0.0:0")
	v6 := listenOn(t, p.B, "tcp6", "[::1]:0")
	prefixes := []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32"), netip.MustParsePrefix("127.0.1.0/24"), netip.MustParsePrefix("::1/128")}
	tl := p.B.StartTcplens(t, "states", "-o", "json", "--host", "127.0.0.2", "--host", "127.0.1.0/24", "--host", "::1")
	dst := func(a string, port uint16) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr(a), port) }
	seen := []*testnet.Conn{
		dialAndClose(t, p.B, dst("127.0.0.2", v4.Port())),
		dialAndClose(t, p.B, dst("127.0.1.5", v4.Port())),
		dialAndClose(t, p.B, dst("::1", v6.Port())),
	}
	unseen := dialAndClose(t, p.B, dst("127.0.0.3", v4.Port()))
	time.Sleep(300 * time.Millisecond)
	recs := tl.Stop().Records(t)

	for _, c := range seen {
		if len(endRecords(t, recs, "state", c.Local, c.Remote)) == 0 || len(endRecords(t, recs, "state", c.Remote, c.Local)) == 0 {
			t.Errorf("%s: transitions of an end missing", c)
		}
	}
	if n := len(endRecords(t, recs, "", unseen.Local, unseen.Remote)) + len(endRecords(t, recs, "", unseen.Remote, unseen.Local)); n != 0 {
		t.Errorf("%s: %d records of a connection outside every --host", unseen, n)
	}
	in := func(s string) bool {
		a := netip.MustParseAddr(s)
		for _, p := range prefixes {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	everyRecord(t, "--host thrice", recs, func(l, r string, _, _ uint64) bool { return in(l) || in(r) })
}

// dualStackSockets counts the namespace's sockets in /proc/net/tcp6 with
// local port port: proof that the server's end really is an AF_INET6
// socket with v4-mapped addresses.
func dualStackSockets(t *testing.T, ns *testnet.NS, port uint16) int {
	t.Helper()
	n := 0
	err := ns.Do(func() error {
		f, err := os.Open("/proc/thread-self/net/tcp6")
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 3 {
				continue
			}
			_, lport, _ := strings.Cut(fields[1], ":")
			addr, _, _ := strings.Cut(fields[2], ":")
			// ::ffff:a.b.c.d as /proc prints it: 0000000000000000FFFF0000xxxxxxxx
			if v, err := strconv.ParseUint(lport, 16, 16); err == nil && uint16(v) == port && strings.HasPrefix(addr, "0000000000000000FFFF0000") {
				n++
			}
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestDualStackIsIPv4: an IPv4 client of a listener on [::] has a server
// socket with ::ffff:a.b.c.d addresses. -4 and --host with the client's
// IPv4 address must see it, and every command must print it as IPv4:
// states (transitions), rtt (samples), retrans (the server sends while the
// client's link is down), resets (sent by the server's socket, and
// received by another).
func TestDualStackIsIPv4(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	p := testnet.NewPair(t)
	var ln *net.TCPListener
	if err := p.B.Do(func() error {
		l, err := net.Listen("tcp", "[::]:0")
		if err == nil {
			ln = l.(*net.TCPListener)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	port := netip.MustParseAddrPort(ln.Addr().String()).Port()
	dst := netip.AddrPortFrom(p.B.IPv4, port)
	// The server's end only: this host's port is the listener's, the
	// other end A's IPv4 address.
	filter := []string{"-o", "json", "-4", "--host", p.A.IPv4.String(), "--lport", fmt.Sprint(port)}
	cmds := []string{"states", "rtt", "retrans", "resets"}
	procs := map[string]*testnet.Process{}
	for _, cmd := range cmds {
		procs[cmd] = p.B.StartTcplens(t, append([]string{cmd}, filter...)...)
	}

	// Connection 1: data both ways, the server retransmits, then aborts.
	c1, err := p.A.Dial(dst, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	s1 := accept(t, ln)
	if n := dualStackSockets(t, p.B, port); n == 0 {
		t.Fatalf("the server's socket is not in /proc/net/tcp6 with a v4-mapped address: the test proves nothing")
	}
	exchange(t, c1, s1, 200000)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sendErr error
	wg.Add(1)
	go func() { defer wg.Done(); sendErr = sendUntil(s1, stop, 10*time.Second) }()
	go func() { // the client drains what the server sends
		buf := make([]byte, 64<<10)
		c1.SetReadDeadline(time.Now().Add(15 * time.Second))
		for {
			if _, err := c1.Read(buf); err != nil {
				return
			}
		}
	}()
	for attempt := 0; attempt < 6; attempt++ { // a flap with nothing in flight (a slow, emulated receiver) makes no retransmission
		time.Sleep(200 * time.Millisecond)
		p.A.FlapLink(t, time.Second)
		time.Sleep(500 * time.Millisecond)
		if info, err := s1.TCPInfo(); err != nil || info.Total_retrans > 0 {
			break
		}
	}
	close(stop)
	wg.Wait()
	if sendErr != nil {
		t.Fatalf("server send: %v", sendErr)
	}
	info, err := s1.WaitAcked(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if info.Total_retrans == 0 {
		t.Fatalf("the link flap caused no retransmission by the server: the test proves nothing")
	}
	if err := s1.SetLinger0(); err != nil {
		t.Fatal(err)
	}
	s1.Close() // the server's socket sends a reset

	// Connection 2: the client aborts; the server's socket receives it.
	c2, err := p.A.Dial(dst, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s2 := accept(t, ln)
	if err := c2.SetLinger0(); err != nil {
		t.Fatal(err)
	}
	c2.Close()
	s2.SetReadDeadline(time.Now().Add(5 * time.Second))
	s2.Read(make([]byte, 1)) // returns once the reset arrived
	time.Sleep(300 * time.Millisecond)

	// The oracle: the server's end of each connection is the client's
	// tuple turned around, in IPv4.
	srv1 := [2]netip.AddrPort{c1.Remote, c1.Local}
	srv2 := [2]netip.AddrPort{c2.Remote, c2.Local}
	for _, cmd := range cmds {
		recs := procs[cmd].Stop().Records(t)
		for _, r := range recs {
			if r.Type() == "summary" {
				continue
			}
			if l, rm := r.String(t, "laddr"), r.String(t, "raddr"); !netip.MustParseAddr(l).Is4() || !netip.MustParseAddr(rm).Is4() {
				t.Errorf("%s -4: a record with non-IPv4 addresses: %v", cmd, r)
			}
		}
		switch cmd {
		case "states":
			for _, s := range [][2]netip.AddrPort{srv1, srv2} {
				if len(endRecords(t, recs, "state", s[0], s[1])) == 0 {
					t.Errorf("states: no transitions of the server's end %s<-%s", s[0], s[1])
				}
			}
		case "rtt":
			if len(endRecords(t, recs, "", srv1[0], srv1[1])) == 0 {
				t.Errorf("rtt: no samples of the server's end %s<-%s", srv1[0], srv1[1])
			}
		case "retrans":
			var segs uint64
			for _, r := range endRecords(t, recs, "retransmit", srv1[0], srv1[1]) {
				segs += r.Uint(t, "segments")
			}
			if segs == 0 {
				t.Errorf("retrans: no retransmissions of the server's end %s<-%s (tcpi_total_retrans %d)", srv1[0], srv1[1], info.Total_retrans)
			}
		case "resets":
			sent := endRecords(t, recs, "reset", srv1[0], srv1[1])
			if len(sent) != 1 || sent[0].String(t, "direction") != "sent" {
				t.Errorf("resets: want the server's one sent reset, got %v", sent)
			}
			got := endRecords(t, recs, "reset", srv2[0], srv2[1])
			if len(got) != 1 || got[0].String(t, "direction") != "received" {
				t.Errorf("resets: want the server's one received reset, got %v", got)
			}
		}
		everyRecord(t, cmd, recs, func(l, r string, lport, _ uint64) bool {
			return r == p.A.IPv4.String() && lport == uint64(port)
		})
	}
}
