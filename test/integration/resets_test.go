package integration

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tcplens/tcplens/internal/probe"
	"github.com/tcplens/tcplens/internal/testnet"
	"github.com/tcplens/tcplens/internal/testutil"
)

// closedPort finds a port nothing listens on in ns: one the kernel just
// handed out to a listener that is closed again.
func closedPort(t testing.TB, ns *testnet.NS, f testnet.Family) netip.AddrPort {
	t.Helper()
	var addr netip.AddrPort
	err := ns.Do(func() error {
		ln, err := net.Listen("tcp", netip.AddrPortFrom(ns.Addr(f), 0).String())
		if err != nil {
			return err
		}
		addr = netip.MustParseAddrPort(ln.Addr().String())
		return ln.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// findReset returns the one reset record with the given direction and
// 4-tuple seen from its local end, failing t unless there is exactly one.
func findReset(t *testing.T, recs []testnet.Record, dir string, local, remote netip.AddrPort) testnet.Record {
	t.Helper()
	var found []testnet.Record
	for _, r := range recs {
		if r.Type() == "reset" && r.String(t, "direction") == dir &&
			r.String(t, "laddr") == local.Addr().String() && r.Uint(t, "lport") == uint64(local.Port()) &&
			r.String(t, "raddr") == remote.Addr().String() && r.Uint(t, "rport") == uint64(remote.Port()) {
			found = append(found, r)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d %s resets %s->%s, want 1; records: %v", len(found), dir, local, remote, recs)
	}
	return found[0]
}

// TestResetsSentAndReceived makes two kinds of reset between A and B and
// finds each, from both ends, with direction, local/remote ends, state and
// (for sent ones) the kernel's reason named as this kernel's BTF names it:
// a connection to a closed port (B sends NO_SOCKET without a socket, A
// receives it in SYN_SENT), and an abort with SO_LINGER 0 (A sends as its socket
// closes, B receives in ESTABLISHED).
func TestResetsSentAndReceived(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	// Before 6.10 the kernel has no enum sk_rst_reason and gives no
	// reason: sent resets must then come without one.
	reasons, err := probe.ResetReasons()
	if err != nil && !errors.Is(err, probe.ErrUnsupported) {
		t.Fatal(err)
	}
	reasonsKnown := err == nil
	for _, f := range testnet.Families {
		t.Run(f.String(), func(t *testing.T) {
			t.Parallel()
			p := testnet.NewPair(t)
			closed := closedPort(t, p.B, f)
			srv := p.B.Listen(t, f, 0)
			tl := p.A.StartTcplens(t, "resets", "-o", "json", "--host", p.B.Addr(f).String())
			start := time.Now()

			// A closed port: refused. The client's port is chosen up front,
			// since a refused dial does not tell it.
			client := closedPort(t, p.A, f)
			err := p.A.Do(func() error {
				d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: net.TCPAddrFromAddrPort(client)}
				c, err := d.Dial("tcp", closed.String())
				if err == nil {
					c.Close()
					return fmt.Errorf("connected to %s, want refused", closed)
				}
				if !strings.Contains(err.Error(), "refused") {
					return err
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}

			// An abort: SO_LINGER 0, then close.
			c, err := p.A.Dial(srv.Addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			testnet.WaitFor(t, 5*time.Second, "the server to accept", func() bool { return srv.Accepted() == 1 })
			if err := c.SetLinger0(); err != nil {
				t.Fatal(err)
			}
			c.Close()
			// B's server reads until the reset ends its connection.
			time.Sleep(300 * time.Millisecond)
			res := tl.Stop()
			end := time.Now()
			recs := res.Records(t)

			check := func(r testnet.Record, state, reason string) {
				t.Helper()
				checkRecordTime(t, r, start, end)
				if got := r.String(t, "state"); got != state {
					t.Errorf("state %q, want %q: %v", got, state, r)
				}
				got, _ := r["reason"].(string)
				if reason == "" || !reasonsKnown {
					if got != "" {
						t.Errorf("a received reset, or one from a kernel without reasons, has reason %q: %v", got, r)
					}
					return
				}
				if _, ok := reasons.Value(probe.ResetReasonPrefix + got); !ok {
					t.Errorf("reason %q is not a value of enum sk_rst_reason: %v", got, r)
				}
				if reason != "*" && got != reason {
					t.Errorf("reason %q, want %q: %v", got, reason, r)
				}
			}
			// Closed port: B sent NO_SOCKET without a socket; A got it in SYN_SENT.
			if reasonsKnown {
				check(findReset(t, recs, "sent", closed, client), "UNKNOWN", "NO_SOCKET")
			} else {
				n := 0
				for _, r := range recs {
					if r.Type() == "reset" && r.String(t, "direction") == "sent" && r.Uint(t, "lport") == uint64(closed.Port()) {
						n++
					}
				}
				t.Logf("kernel without reset reasons: %d sent resets from the closed port", n)
			}
			check(findReset(t, recs, "received", client, closed), "SYN_SENT", "")
			// Abort: tcp_disconnect moves A's socket to CLOSE before it
			// sends the reset, so that is the state the kernel reports; B
			// got it in ESTABLISHED.
			abort := findReset(t, recs, "sent", c.Local, c.Remote)
			check(abort, "CLOSE", "*")
			t.Logf("SO_LINGER 0 close: reason %s", abort["reason"])
			check(findReset(t, recs, "received", c.Remote, c.Local), "ESTABLISHED", "")
			checkNoDeliveryLoss(t, res.Summary(t, ""))
		})
	}
}
