package integration

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcplens/tcplens/internal/testnet"
	"github.com/tcplens/tcplens/internal/testutil"
)

// TestDropsNoSocket connects from A to a closed port of B: B's kernel
// drops the SYN with NO_SOCKET, and tcplens reports it with B as the local
// end (the packet arrived there), A as the remote, and the SYN flag. With
// --stack the record carries the kernel stack; its location and frames are
// checked against the test's own reading of /proc/kallsyms.
func TestDropsNoSocket(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	for _, f := range testnet.Families {
		t.Run(f.String(), func(t *testing.T) {
			t.Parallel()
			p := testnet.NewPair(t)
			closed := closedPort(t, p.B, f)
			client := closedPort(t, p.A, f)
			tl := p.B.StartTcplens(t, "drops", "-o", "json", "--stack", "--port", fmt.Sprint(closed.Port()))
			start := time.Now()
			err := p.A.Do(func() error {
				d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: net.TCPAddrFromAddrPort(client)}
				if c, err := d.Dial("tcp", closed.String()); err == nil {
					c.Close()
					return fmt.Errorf("connected to %s, want refused", closed)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond)
			res := tl.Stop()
			end := time.Now()
			var found []testnet.Record
			for _, r := range res.Records(t) {
				if r.Type() == "drop" && r.String(t, "laddr") == closed.Addr().String() && r.Uint(t, "lport") == uint64(closed.Port()) &&
					r.String(t, "raddr") == client.Addr().String() && r.Uint(t, "rport") == uint64(client.Port()) {
					found = append(found, r)
				}
			}
			if len(found) != 1 {
				t.Fatalf("%d drops of %s->%s, want 1; stdout:\n%s", len(found), client, closed, res.Stdout)
			}
			r := found[0]
			checkRecordTime(t, r, start, end)
			if got := r.String(t, "reason"); got != "NO_SOCKET" {
				t.Errorf("reason %q, want NO_SOCKET: %v", got, r)
			}
			if got := r.String(t, "direction"); got != "in" {
				t.Errorf("direction %q, want in: %v", got, r)
			}
			if got := r.String(t, "flags"); got != "S" {
				t.Errorf("flags %q, want S: %v", got, r)
			}
			sum := res.Summary(t, "")
			checkNoDeliveryLoss(t, sum)
			if lost := sum.Uint(t, "stacks_lost"); lost != 0 {
				t.Errorf("lost %d stacks", lost)
			}
			checkDropLocation(t, r)
		})
	}
}

// kallsymsOracle is /proc/kallsyms read the simplest way, apart from
// tcplens's symbolizer: name -> addresses, and every code symbol for a
// linear search.
type kallsymsOracle struct {
	addrs map[string][]uint64
	all   []struct {
		addr uint64
		name string
	}
}

func readKallsyms(t *testing.T) *kallsymsOracle {
	t.Helper()
	b, err := os.ReadFile("/proc/kallsyms")
	if err != nil {
		t.Fatal(err)
	}
	o := &kallsymsOracle{addrs: map[string][]uint64{}}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || !strings.ContainsAny(f[1], "tTwW") {
			continue
		}
		a, err := strconv.ParseUint(f[0], 16, 64)
		if err != nil || a == 0 {
			continue
		}
		o.addrs[f[2]] = append(o.addrs[f[2]], a)
		o.all = append(o.all, struct {
			addr uint64
			name string
		}{a, f[2]})
	}
	if len(o.all) == 0 {
		t.Fatal("/proc/kallsyms shows no addresses: kptr_restrict hides them from this test")
	}
	return o
}

// holds reports whether addr is name+off: name is at addr-off and no code
// symbol lies between it and addr.
func (o *kallsymsOracle) holds(name string, off, addr uint64) bool {
	start := addr - off
	if !slices.Contains(o.addrs[name], start) {
		return false
	}
	for _, s := range o.all {
		if s.addr > start && s.addr <= addr {
			return false
		}
	}
	return true
}

// splitSymbol splits "tcp_v4_rcv+0x91" (or with " [module]").
func splitSymbol(t *testing.T, s string) (string, uint64) {
	t.Helper()
	s, _, _ = strings.Cut(s, " ")
	name, hexOff, ok := strings.Cut(s, "+0x")
	off, err := strconv.ParseUint(hexOff, 16, 64)
	if !ok || err != nil || name == "" {
		t.Fatalf("%q is not a symbol+offset", s)
	}
	return name, off
}

// checkDropLocation checks that a NO_SOCKET drop's location names the TCP
// receive function that dropped it, at the address that location_addr
// gives, and that its stack is kernel symbols that include that function.
func checkDropLocation(t *testing.T, r testnet.Record) {
	t.Helper()
	o := readKallsyms(t)
	addr, err := strconv.ParseUint(strings.TrimPrefix(r.String(t, "location_addr"), "0x"), 16, 64)
	if err != nil {
		t.Fatalf("location_addr: %v in %v", err, r)
	}
	name, off := splitSymbol(t, r.String(t, "location"))
	if !o.holds(name, off, addr) {
		t.Errorf("location %s+%#x is not %#x by /proc/kallsyms", name, off, addr)
	}
	if !strings.HasPrefix(name, "tcp_") && !strings.HasPrefix(name, "ip") {
		t.Errorf("a NO_SOCKET drop at %s, want a tcp_ or ip function", name)
	}
	frames, ok := r["stack"].([]any)
	if !ok || len(frames) == 0 {
		t.Fatalf("no stack in %v", r)
	}
	sawLocation := false
	for _, f := range frames {
		s, _ := f.(string)
		fname, _ := splitSymbol(t, s)
		if len(o.addrs[fname]) == 0 {
			t.Errorf("stack frame %q: no such kernel symbol", s)
		}
		sawLocation = sawLocation || s == r.String(t, "location")
	}
	if !sawLocation {
		t.Errorf("stack %v does not pass through the location %s", frames, r.String(t, "location"))
	}
}

// TestDropsListenOverflows fills a listener's accept queue (backlog 0,
// never accepting) with a bounded number of connects: the listener turns
// the rest away, which the kernel counts in TcpExt ListenOverflows and
// ListenDrops. tcplens's summary must give exactly the growth of B's own
// counters, read by the test.
func TestDropsListenOverflows(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	p := testnet.NewPair(t)
	var lfd int
	var laddr netip.AddrPort
	err := p.B.Do(func() error {
		var err error
		if lfd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		if err := unix.Bind(lfd, &unix.SockaddrInet4{Addr: p.B.IPv4.As4()}); err != nil {
			return err
		}
		if err := unix.Listen(lfd, 0); err != nil { // one connection fills it
			return err
		}
		sa, err := unix.Getsockname(lfd)
		if err != nil {
			return err
		}
		laddr = netip.AddrPortFrom(p.B.IPv4, uint16(sa.(*unix.SockaddrInet4).Port))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(lfd)

	before := snmp(t, p.B)
	tl := p.B.StartTcplens(t, "drops", "-o", "json", "--port", fmt.Sprint(laddr.Port()))
	const conns = 16
	var fds []int
	err = p.A.Do(func() error {
		for i := 0; i < conns; i++ {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			fds = append(fds, fd)
			// On close, a reset: the listener forgets the connection at
			// once instead of counting its retransmissions as overflows.
			unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
			if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: laddr.Addr().As4(), Port: int(laddr.Port())}); err != nil && err != unix.EINPROGRESS {
				return err
			}
		}
		return nil
	})
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	for _, fd := range fds {
		unix.Close(fd)
	}
	fds = nil
	// Wait (bounded) until B's counters stop moving, so that tcplens's
	// last reading and the test's see the same values.
	last := snmp(t, p.B)["TcpExt:ListenOverflows"]
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		time.Sleep(300 * time.Millisecond)
		now := snmp(t, p.B)["TcpExt:ListenOverflows"]
		if now == last {
			break
		}
		last = now
	}
	res := tl.Stop()
	after := snmp(t, p.B)
	sum := res.Summary(t, "")
	overflows, drops := snmpDelta(t, before, after, "TcpExt:ListenOverflows"), snmpDelta(t, before, after, "TcpExt:ListenDrops")
	reasons := map[string]int{}
	for _, r := range res.Records(t) {
		if r.Type() == "drop" {
			reason, _ := r["reason"].(string)
			reasons[reason+" at "+r.String(t, "location")]++
		}
	}
	t.Logf("%d connects: ListenOverflows +%d, ListenDrops +%d; drop records: %v", conns, overflows, drops, reasons)
	if overflows == 0 {
		t.Fatalf("%d connects to a full accept queue caused no ListenOverflows", conns)
	}
	if got := sum.Uint(t, "listen_overflows"); got != overflows {
		t.Errorf("listen_overflows %d, the namespace counted %d", got, overflows)
	}
	if got := sum.Uint(t, "listen_drops"); got != drops {
		t.Errorf("listen_drops %d, the namespace counted %d", got, drops)
	}
}

// tcpSYN builds an IPv4 TCP SYN header (no options) from src to dst with
// its checksum, for a raw socket.
func tcpSYN(src, dst netip.AddrPort, seq uint32) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, struct {
		Sport, Dport uint16
		Seq, Ack     uint32
		Off, Flags   uint8
		Win, Sum, Up uint16
	}{src.Port(), dst.Port(), seq, 0, 5 << 4, 0x02, 65535, 0, 0})
	seg := b.Bytes()
	s, d := src.Addr().As4(), dst.Addr().As4()
	var sum uint32
	add := func(p []byte) {
		for i := 0; i+1 < len(p); i += 2 {
			sum += uint32(p[i])<<8 | uint32(p[i+1])
		}
	}
	add(s[:])
	add(d[:])
	sum += unix.IPPROTO_TCP + uint32(len(seg))
	add(seg)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(seg[16:], ^uint16(sum))
	return seg
}

// TestDropsLossIsCounted runs tcplens drops with a one-page ring buffer
// and floods B with SYNs to a closed port from raw sockets on A: far more
// drops than the buffer holds arrive faster than they can be read, and
// the summary must say how many records were lost, not hide them.
func TestDropsLossIsCounted(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	p := testnet.NewPair(t)
	closed := closedPort(t, p.B, testnet.IPv4)
	tl := p.B.StartTcplens(t, "drops", "-o", "json", "--port", fmt.Sprint(closed.Port()), "--ring-buffer-bytes", "4096")
	// B answers each SYN it drops for want of a socket with a reset: its
	// namespace's Tcp:OutRsts counts the drops the SYNs caused there,
	// independently of tcplens.
	snmpBefore, err := p.B.SNMP()
	if err != nil {
		t.Fatal(err)
	}
	const senders, perSender = 4, 5000
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func(s int) {
			defer wg.Done()
			errs <- p.A.Do(func() error {
				fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_TCP)
				if err != nil {
					return err
				}
				defer unix.Close(fd)
				to := &unix.SockaddrInet4{Addr: closed.Addr().As4()}
				deadline := time.Now().Add(20 * time.Second)
				for i := 0; i < perSender; i++ {
					src := netip.AddrPortFrom(p.A.IPv4, uint16(20000+s*perSender+i%perSender))
					err := unix.Sendto(fd, tcpSYN(src, closed, uint32(i)), 0, to)
					// A slow machine (qemu TCG) fills the raw socket's send
					// buffer: wait for room, within a bound.
					for err == unix.ENOBUFS && time.Now().Before(deadline) {
						time.Sleep(time.Millisecond)
						err = unix.Sendto(fd, tcpSYN(src, closed, uint32(i)), 0, to)
					}
					if err != nil {
						return err
					}
				}
				return nil
			})
		}(s)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("raw send: %v", err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	snmpAfter, err := p.B.SNMP()
	if err != nil {
		t.Fatal(err)
	}
	caused := snmpAfter["Tcp:OutRsts"] - snmpBefore["Tcp:OutRsts"]
	res := tl.Stop()
	sum := res.Summary(t, "")
	drops, lost := sum.Uint(t, "drops"), sum.Uint(t, "lost")
	t.Logf("%d SYNs sent: %d drop records, %d lost; B sent %d resets (Tcp:OutRsts)", senders*perSender, drops, lost, caused)
	if caused == 0 {
		t.Fatalf("B sent no reset: no SYN reached the closed port, the test proves nothing")
	}
	if drops+lost < caused {
		t.Errorf("%d records and %d lost are fewer than the %d drops B's resets prove: loss went uncounted", drops, lost, caused)
	}
	if lost == 0 {
		t.Fatalf("a one-page ring buffer lost nothing under a burst of %d drops", senders*perSender)
	}
	t.Logf("by reason: %v", sum["reasons"])
	// Each SYN is dropped at B (NO_SOCKET), B's reset to it is dropped at
	// A, where no socket has the raw sender's port (NO_SOCKET), and each of
	// A's raw sockets gets its own copy of that reset, which it drops when
	// its receive buffer is full (SOCKET_RCVBUFF, seen on 6.1 under qemu)
	// or purges on close (QUEUE_PURGE): at most 2 + senders drops a SYN.
	if bound := (2 + senders) * senders * perSender; drops+lost > uint64(bound) {
		t.Errorf("%d records and %d lost exceed the %d drops the SYNs can cause", drops, lost, bound)
	}
}
