package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tcplens/tcplens/internal/testnet"
	"github.com/tcplens/tcplens/internal/testutil"
)

// ownListener listens in ns on the family's address; the test accepts
// itself, so it owns both ends' sockets.
func ownListener(t *testing.T, ns *testnet.NS, f testnet.Family) *net.TCPListener {
	t.Helper()
	var ln net.Listener
	err := ns.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", netip.AddrPortFrom(ns.Addr(f), 0).String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.(*net.TCPListener)
}

// accept accepts one connection within 5 s, as a testnet.Conn seen from
// the server's end.
func accept(t *testing.T, ln *net.TCPListener) *testnet.Conn {
	t.Helper()
	ln.SetDeadline(time.Now().Add(5 * time.Second))
	c, err := ln.AcceptTCP()
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return &testnet.Conn{TCPConn: c, Local: netip.MustParseAddrPort(c.LocalAddr().String()),
		Remote: netip.MustParseAddrPort(c.RemoteAddr().String())}
}

// exchange sends n bytes from a to b and reads them there.
func exchange(t *testing.T, a, b *testnet.Conn, n int) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := a.Write(make([]byte, n))
		done <- err
	}()
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(b, make([]byte, n)); err != nil {
		t.Fatalf("read %d bytes %s: %v", n, b, err)
	}
	if err := <-done; err != nil {
		t.Fatalf("write %d bytes %s: %v", n, a, err)
	}
}

// waitEOF reads c until the peer's FIN, at most 5 s.
func waitEOF(t *testing.T, c *testnet.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := io.Copy(io.Discard, c); err != nil || n != 0 {
		t.Fatalf("%s: wait for FIN: %d bytes, %v", c, n, err)
	}
}

// finalInfo waits until c's socket is in CLOSE (after its own FIN was
// acknowledged and the peer's received) and returns TCP_INFO then: the
// counters are final, as the kernel has them when the socket closes.
func finalInfo(t *testing.T, c *testnet.Conn) (acked, received uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		info, err := c.TCPInfo()
		if err != nil {
			t.Fatal(err)
		}
		if info.State == 7 /* TCP_CLOSE */ {
			return info.Bytes_acked, info.Bytes_received
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still in state %d after 5 s", c, info.State)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// haveOwnerTracepoints: sock:sock_send_length and sock_recv_length (6.3+),
// which name the owner of an accepted socket, exist on this kernel.
func haveOwnerTracepoints() bool {
	_, err := os.Stat("/sys/kernel/tracing/events/sock/sock_recv_length")
	return err == nil
}

func selfComm(t *testing.T) string {
	b, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// checkStates checks one end's transitions and its lifetime record.
func checkStates(t *testing.T, recs []testnet.Record, c *testnet.Conn, want []string, ownerFrom int,
	acked, received uint64, from, to time.Time) {
	t.Helper()
	states := connRecords(t, recs, "state", c)
	var got []string
	for _, r := range states {
		got = append(got, r.String(t, "old_state")+"->"+r.String(t, "new_state"))
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("%s: transitions\n got  %s\n want %s", c, strings.Join(got, " "), strings.Join(want, " "))
	}
	pid, comm := uint64(os.Getpid()), selfComm(t)
	for i, r := range states {
		checkRecordTime(t, r, from, to)
		if i > 0 {
			if d, ok := r["duration_us"].(json.Number); !ok {
				t.Errorf("%s: no duration_us in %v", c, r)
			} else if v, _ := d.Float64(); v <= 0 {
				t.Errorf("%s: duration_us %v", c, d)
			}
		}
		if strings.HasSuffix(got[i], "->ESTABLISHED") {
			h, ok := r["handshake_us"].(json.Number)
			v, _ := h.Float64()
			if !ok || v <= 0 {
				t.Errorf("%s: handshake_us %v, want > 0: %v", c, r["handshake_us"], r)
			}
			t.Logf("%s: %s handshake %s µs", c, got[i], h)
		}
		if i < ownerFrom {
			if r["pid"] != nil || r["comm"] != nil {
				t.Errorf("%s: %s names pid %v comm %v before the kernel could know the owner", c, got[i], r["pid"], r["comm"])
			}
		} else if r["pid"] == nil || r.Uint(t, "pid") != pid || r.String(t, "comm") != comm {
			t.Errorf("%s: %s: pid %v comm %v, want %d %q", c, got[i], r["pid"], r["comm"], pid, comm)
		}
	}
	lives := connRecords(t, recs, "lifetime", c)
	if len(lives) != 1 {
		t.Fatalf("%s: %d lifetime records, want 1: %v", c, len(lives), lives)
	}
	l := lives[0]
	if l.Uint(t, "bytes_acked") != acked || l.Uint(t, "bytes_received") != received {
		t.Errorf("%s: lifetime bytes_acked %d bytes_received %d, TCP_INFO says %d %d", c,
			l.Uint(t, "bytes_acked"), l.Uint(t, "bytes_received"), acked, received)
	}
	// Usually 0 on a clean veth, but a slow machine (TCG) can time out
	// and retransmit: the socket's own counter, still readable in CLOSE,
	// is the oracle.
	info, err := c.TCPInfo()
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Uint(t, "total_retrans"); got != uint64(info.Total_retrans) {
		t.Errorf("%s: lifetime total_retrans %d, TCP_INFO says %d", c, got, info.Total_retrans)
	}
	if l["from_start"] != true {
		t.Errorf("%s: lifetime %v", c, l)
	}
	if ownerFrom >= len(want) { // the kernel never names the owner
		if l["pid"] != nil {
			t.Errorf("%s: lifetime names pid %v where the kernel cannot know it", c, l["pid"])
		}
	} else if l["pid"] == nil || l.Uint(t, "pid") != pid {
		t.Errorf("%s: lifetime pid %v, want %d: %v", c, l["pid"], pid, l)
	}
	d, _ := l["duration_us"].(json.Number).Float64()
	if max := to.Sub(from).Seconds() * 1e6; d <= 0 || d > max {
		t.Errorf("%s: lifetime duration_us %v, want in (0, %v]", c, d, max)
	}
}

// TestStatesSequences follows two connections the test owns both ends of,
// one closed first by the client (active close) and one by the server
// (the client's passive close), and checks every transition of both ends,
// handshake latency, the owner where the kernel knows it, and the
// lifetime bytes against TCP_INFO.
func TestStatesSequences(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	for _, f := range testnet.Families {
		t.Run(f.String(), func(t *testing.T) {
			t.Parallel()
			p := testnet.NewPair(t)
			ln := ownListener(t, p.B, f)
			dst := netip.MustParseAddrPort(ln.Addr().String())
			proc := p.A.StartTcplens(t, "states", "-o", "json", "--port", fmt.Sprint(dst.Port()))
			from := time.Now()

			type end struct {
				c               *testnet.Conn
				acked, received uint64
			}
			// Active close: the client shuts down first.
			cli, err := p.A.Dial(dst, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer cli.Close()
			srv := accept(t, ln)
			exchange(t, cli, srv, 70000)
			exchange(t, srv, cli, 3000)
			cli.CloseWrite()
			waitEOF(t, srv)
			time.Sleep(250 * time.Millisecond) // the FIN's ACK goes alone, FIN_WAIT2 is seen
			srv.CloseWrite()
			waitEOF(t, cli)
			activeCli, activeSrv := end{c: cli}, end{c: srv}
			activeCli.acked, activeCli.received = finalInfo(t, cli)
			activeSrv.acked, activeSrv.received = finalInfo(t, srv)

			// Passive close: the server shuts down first.
			cli2, err := p.A.Dial(dst, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer cli2.Close()
			srv2 := accept(t, ln)
			exchange(t, cli2, srv2, 5000)
			exchange(t, srv2, cli2, 90000)
			srv2.CloseWrite()
			waitEOF(t, cli2)
			time.Sleep(250 * time.Millisecond)
			cli2.CloseWrite()
			waitEOF(t, srv2)
			passiveCli, passiveSrv := end{c: cli2}, end{c: srv2}
			passiveCli.acked, passiveCli.received = finalInfo(t, cli2)
			passiveSrv.acked, passiveSrv.received = finalInfo(t, srv2)

			time.Sleep(200 * time.Millisecond) // records reach the reader
			res := proc.Stop()
			to := time.Now()
			recs := res.Records(t)
			if res.ExitCode != 0 {
				t.Fatalf("tcplens exited %d: %s", res.ExitCode, res.Stderr)
			}

			// The same on every kernel: before 6.15 the kernel fires a
			// child's LISTEN->SYN_RECV before it has its 4-tuple, and
			// tcplens reports it at the child's next transition
			// (bpf/states.c), as it does CLOSE->SYN_SENT.
			activeClose := []string{"CLOSE->SYN_SENT", "SYN_SENT->ESTABLISHED", "ESTABLISHED->FIN_WAIT1", "FIN_WAIT1->FIN_WAIT2", "FIN_WAIT2->CLOSE"}
			passiveClose := []string{"LISTEN->SYN_RECV", "SYN_RECV->ESTABLISHED", "ESTABLISHED->CLOSE_WAIT", "CLOSE_WAIT->LAST_ACK", "LAST_ACK->CLOSE"}
			// The kernel names the owner at connect for the client; for an
			// accepted socket only from its first receive, and not at all
			// before 6.3 (no sock:sock_recv_length).
			acceptedOwnerFrom := 2
			if !haveOwnerTracepoints() {
				acceptedOwnerFrom = len(passiveClose)
			}
			checkStates(t, recs, activeCli.c, activeClose, 0, activeCli.acked, activeCli.received, from, to)
			checkStates(t, recs, activeSrv.c, passiveClose, acceptedOwnerFrom, activeSrv.acked, activeSrv.received, from, to)
			passiveClientSeq := []string{"CLOSE->SYN_SENT", "SYN_SENT->ESTABLISHED", "ESTABLISHED->CLOSE_WAIT", "CLOSE_WAIT->LAST_ACK", "LAST_ACK->CLOSE"}
			activeServerSeq := []string{"LISTEN->SYN_RECV", "SYN_RECV->ESTABLISHED", "ESTABLISHED->FIN_WAIT1", "FIN_WAIT1->FIN_WAIT2", "FIN_WAIT2->CLOSE"}
			checkStates(t, recs, passiveCli.c, passiveClientSeq, 0, passiveCli.acked, passiveCli.received, from, to)
			checkStates(t, recs, passiveSrv.c, activeServerSeq, acceptedOwnerFrom, passiveSrv.acked, passiveSrv.received, from, to)
			checkNoDeliveryLoss(t, res.Summary(t, ""))
		})
	}
}
