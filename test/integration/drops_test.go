package integration

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcplens/tcplens/internal/testnet"
	"github.com/tcplens/tcplens/internal/testutil"
)

// TestDropsNoSocket connects from A to a closed port of B: B's kernel
// drops the SYN with NO_SOCKET, and tcplens reports it with B as the local
// end (the packet arrived there), A as the remote, and the SYN flag.
func TestDropsNoSocket(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	for _, f := range testnet.Families {
		t.Run(f.String(), func(t *testing.T) {
			t.Parallel()
			p := testnet.NewPair(t)
			closed := closedPort(t, p.B, f)
			client := closedPort(t, p.A, f)
			tl := p.B.StartTcplens(t, "drops", "-o", "json", "--port", fmt.Sprint(closed.Port()))
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
			if lost := res.Summary(t, "").Uint(t, "lost"); lost != 0 {
				t.Errorf("lost %d records", lost)
			}
		})
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
				for i := 0; i < perSender; i++ {
					src := netip.AddrPortFrom(p.A.IPv4, uint16(20000+s*perSender+i%perSender))
					if err := unix.Sendto(fd, tcpSYN(src, closed, uint32(i)), 0, to); err != nil {
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
	res := tl.Stop()
	sum := res.Summary(t, "")
	drops, lost := sum.Uint(t, "drops"), sum.Uint(t, "lost")
	t.Logf("%d SYNs sent: %d drop records, %d lost", senders*perSender, drops, lost)
	if lost == 0 {
		t.Fatalf("a one-page ring buffer lost nothing under a burst of %d drops", senders*perSender)
	}
	t.Logf("by reason: %v", sum["reasons"])
	// Each SYN is dropped at B (NO_SOCKET), B's reset to it is dropped at
	// A, where no socket has the raw sender's port (NO_SOCKET), and A's raw
	// sockets, which get a copy of every TCP packet, drop their copy when
	// their receive buffer is full (SOCKET_RCVBUFF): at most three each.
	if drops+lost > 3*senders*perSender {
		t.Errorf("%d records and %d lost exceed the %d drops the SYNs can cause", drops, lost, 3*senders*perSender)
	}
}
