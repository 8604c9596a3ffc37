package testnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// Server is a TCP listener in a namespace. Each accepted connection reads
// until EOF (discarding what it reads), then closes; so a client that
// half-closes gets the server's FIN back after its own.
type Server struct {
	Addr     netip.AddrPort
	ln       net.Listener
	wg       sync.WaitGroup
	mu       sync.Mutex
	accepted int
	received int64
}

// Listen starts a Server on the namespace's address of the family; port 0
// picks a free port. It is closed when the test ends.
func (ns *NS) Listen(t testing.TB, f Family, port uint16) *Server {
	t.Helper()
	addr := netip.AddrPortFrom(ns.Addr(f), port)
	// No keepalive probes: a test's packet counts must hold only what it made.
	lc := net.ListenConfig{KeepAlive: -1}
	var ln net.Listener
	err := ns.Do(func() error {
		var err error
		ln, err = lc.Listen(context.Background(), "tcp", addr.String())
		return err
	})
	if err != nil {
		t.Fatalf("testnet: listen on %s in %s: %v", addr, ns.Name, err)
	}
	s := &Server{Addr: netip.MustParseAddrPort(ln.Addr().String()), ln: ln}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(s.Close)
	return s
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return // closed
		}
		s.mu.Lock()
		s.accepted++
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			// Bounded: a client that never closes does not hold the test.
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			n, _ := io.Copy(io.Discard, c)
			s.mu.Lock()
			s.received += n
			s.mu.Unlock()
		}()
	}
}

// Accepted is how many connections the server accepted.
func (s *Server) Accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// Received is how many bytes the server read.
func (s *Server) Received() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.received
}

// Close stops accepting and waits for the connections being served.
func (s *Server) Close() {
	s.ln.Close()
	s.wg.Wait()
}

// Conn is one client connection and its 4-tuple, as the client sees it.
type Conn struct {
	*net.TCPConn
	Local, Remote netip.AddrPort
}

// Dial opens one TCP connection from the namespace to dst within timeout.
func (ns *NS) Dial(dst netip.AddrPort, timeout time.Duration) (*Conn, error) {
	d := net.Dialer{Timeout: timeout, KeepAlive: -1}
	var c net.Conn
	err := ns.Do(func() error {
		var err error
		c, err = d.Dial("tcp", dst.String())
		return err
	})
	if err != nil {
		return nil, err
	}
	tc := c.(*net.TCPConn)
	return &Conn{
		TCPConn: tc,
		Local:   netip.MustParseAddrPort(tc.LocalAddr().String()),
		Remote:  netip.MustParseAddrPort(tc.RemoteAddr().String()),
	}, nil
}

// OpenConns opens n connections from ns to dst, one after the other, and
// fails the test if any does not connect within 5 s. Close them with
// CloseConns.
func (ns *NS) OpenConns(t testing.TB, dst netip.AddrPort, n int) []*Conn {
	t.Helper()
	conns := make([]*Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for i := 0; i < n; i++ {
		c, err := ns.Dial(dst, 5*time.Second)
		if err != nil {
			t.Fatalf("testnet: connection %d of %d from %s to %s: %v", i+1, n, ns.Name, dst, err)
		}
		conns = append(conns, c)
	}
	return conns
}

// CloseConns closes connections made to a Server in a fixed order, so the
// packets are known: the client sends FIN, the server reads EOF and sends
// its FIN, the client ACKs it (before its read returns EOF) and closes in
// TIME_WAIT. From the client, each connection is then exactly SYN, ACK,
// FIN+ACK, ACK on the wire.
func CloseConns(t testing.TB, conns []*Conn) {
	t.Helper()
	for _, c := range conns {
		if err := c.CloseWrite(); err != nil {
			t.Fatalf("testnet: shut down %s->%s for writing: %v", c.Local, c.Remote, err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.Copy(io.Discard, c); err != nil {
			t.Fatalf("testnet: wait for the server to close %s->%s: %v", c.Local, c.Remote, err)
		}
		c.Close()
	}
}

// DialFail dials dst expecting no answer: a SYN dropped on the way. It
// fails the test if the connection succeeds or fails otherwise than by
// timing out (a refusal means the SYN got through). The kernel retransmits
// the SYN while the dial waits (after 1 s, then 3 s, ... from the first).
func (ns *NS) DialFail(t testing.TB, dst netip.AddrPort, timeout time.Duration) {
	t.Helper()
	c, err := ns.Dial(dst, timeout)
	if err == nil {
		c.Close()
		t.Fatalf("testnet: connection from %s to %s succeeded, want it to time out", ns.Name, dst)
	}
	var nerr net.Error
	if !errors.As(err, &nerr) || !nerr.Timeout() {
		t.Fatalf("testnet: connection from %s to %s: %v, want a timeout", ns.Name, dst, err)
	}
}

// Bulk sends up to size bytes from ns to a Server at dst, stopping after
// maxTime, and closes the connection as CloseConns does. It returns the
// bytes sent.
func (ns *NS) Bulk(t testing.TB, dst netip.AddrPort, size int64, maxTime time.Duration) int64 {
	t.Helper()
	c, err := ns.Dial(dst, 5*time.Second)
	if err != nil {
		t.Fatalf("testnet: bulk connection from %s to %s: %v", ns.Name, dst, err)
	}
	defer c.Close()
	c.SetWriteDeadline(time.Now().Add(maxTime))
	buf := make([]byte, 64<<10)
	var sent int64
	for sent < size {
		chunk := buf
		if rest := size - sent; rest < int64(len(chunk)) {
			chunk = chunk[:rest]
		}
		n, err := c.Write(chunk)
		sent += int64(n)
		if err != nil {
			var nerr net.Error
			if errors.As(err, &nerr) && nerr.Timeout() {
				break // the time bound, not a failure
			}
			t.Fatalf("testnet: bulk send from %s to %s after %d bytes: %v", ns.Name, dst, sent, err)
		}
	}
	CloseConns(t, []*Conn{c})
	return sent
}

// String is "local->remote".
func (c *Conn) String() string { return fmt.Sprintf("%s->%s", c.Local, c.Remote) }
