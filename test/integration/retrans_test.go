package integration

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/tcplens/tcplens/internal/testnet"
	"github.com/tcplens/tcplens/internal/testutil"
)

// connRecords keeps the records of one connection, seen from its local
// end: the test's own 4-tuple, so traffic of other tests (tracepoints see
// every namespace) does not count.
func connRecords(t *testing.T, recs []testnet.Record, typ string, c *testnet.Conn) []testnet.Record {
	t.Helper()
	var out []testnet.Record
	for _, r := range recs {
		if r.Type() != typ {
			continue
		}
		if r.String(t, "laddr") == c.Local.Addr().String() && r.Uint(t, "lport") == uint64(c.Local.Port()) &&
			r.String(t, "raddr") == c.Remote.Addr().String() && r.Uint(t, "rport") == uint64(c.Remote.Port()) {
			out = append(out, r)
		}
	}
	return out
}

// checkRecordTime checks "time" is RFC 3339 with nanoseconds and within
// the test's run.
func checkRecordTime(t *testing.T, r testnet.Record, from, to time.Time) {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, r.String(t, "time"))
	if err != nil {
		t.Fatalf("time %q: %v", r["time"], err)
	}
	if ts.Before(from.Add(-time.Second)) || ts.After(to.Add(time.Second)) {
		t.Errorf("time %v is outside the test's run %v .. %v", ts, from, to)
	}
}

// sendUntil writes to c until stop is closed or the write deadline passes.
func sendUntil(c *testnet.Conn, stop <-chan struct{}, maxTime time.Duration) error {
	buf := make([]byte, 64<<10)
	c.SetWriteDeadline(time.Now().Add(maxTime))
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		// Short deadlines, so a stop request is seen while the window is shut.
		c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := c.Write(buf); err != nil {
			var nerr net.Error
			if errors.As(err, &nerr) && nerr.Timeout() {
				continue
			}
			return err
		}
	}
}

// TestRetransSegmentsMatchTotalRetrans takes B's link down for a second
// while A streams to B: A retransmits, and the segments tcplens reports
// for that connection, in stream mode and counted per interval, add up
// exactly to the kernel's own tcpi_total_retrans of A's socket.
func TestRetransSegmentsMatchTotalRetrans(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	for _, f := range testnet.Families {
		t.Run(f.String(), func(t *testing.T) {
			t.Parallel()
			p := testnet.NewPair(t)
			srv := p.B.Listen(t, f, 0)
			port := fmt.Sprint(srv.Addr.Port())
			stream := p.A.StartTcplens(t, "retrans", "-o", "json", "--port", port)
			counts := p.A.StartTcplens(t, "retrans", "-o", "json", "--port", port, "--interval", "300ms")
			start := time.Now()

			// The independent oracle: A's namespace counts every segment it
			// retransmits in Tcp:RetransSegs, and this connection is the
			// only one A makes. tcplens reports the growth of the socket's
			// tcpi_total_retrans, so comparing with that alone would be
			// true by construction.
			snmpBefore, err := p.A.SNMP()
			if err != nil {
				t.Fatal(err)
			}
			c, err := p.A.Dial(srv.Addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var sendErr error
			wg.Add(1)
			go func() { defer wg.Done(); sendErr = sendUntil(c, stop, 10*time.Second) }()
			// A flap nearly always makes A retransmit; a few tries bound
			// the rare one that falls between two sends.
			for attempt := 0; attempt < 6; attempt++ { // a flap with nothing in flight (a slow, emulated receiver) makes no retransmission
				time.Sleep(300 * time.Millisecond)
				p.B.FlapLink(t, time.Second)
				time.Sleep(700 * time.Millisecond)
				if info, err := c.TCPInfo(); err != nil || info.Total_retrans > 0 {
					break
				}
			}
			close(stop)
			wg.Wait()
			if sendErr != nil {
				t.Fatalf("send: %v", sendErr)
			}
			info, err := c.WaitAcked(10 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			snmpAfter, err := p.A.SNMP()
			if err != nil {
				t.Fatal(err)
			}
			snmpSegs := snmpAfter["Tcp:RetransSegs"] - snmpBefore["Tcp:RetransSegs"]
			// Give the last records time to reach the ring buffer reader.
			time.Sleep(200 * time.Millisecond)
			streamRes, countRes := stream.Stop(), counts.Stop()
			end := time.Now()
			want := uint64(info.Total_retrans)
			if want == 0 {
				t.Fatalf("the link flap caused no retransmission (tcpi_total_retrans 0): the test proves nothing")
			}

			recs := connRecords(t, streamRes.Records(t), "retransmit", c)
			var segs uint64
			for _, r := range recs {
				segs += r.Uint(t, "segments")
				if r["err"].(interface{ String() string }).String() != "0" {
					t.Logf("failed retransmission: %v", r)
				}
				checkRecordTime(t, r, start, end)
				if r.String(t, "comm") == "" {
					t.Errorf("no comm: %v", r) // the on-CPU task always has a name
				}
				if k := r.String(t, "kind"); k != "data" {
					t.Errorf("kind %q, want data: %v", k, r)
				}
				if s := r.String(t, "state"); s != "ESTABLISHED" {
					t.Logf("state %s: %v", s, r) // may be in loss recovery, still ESTABLISHED
				}
			}
			t.Logf("%s: %d retransmit records, %d segments; tcpi_total_retrans %d; namespace Tcp:RetransSegs +%d", c, len(recs), segs, want, snmpSegs)
			if segs != want {
				t.Errorf("stream: segments add up to %d, tcpi_total_retrans is %d", segs, want)
			}
			if segs != snmpSegs {
				t.Errorf("stream: segments add up to %d, the namespace's Tcp:RetransSegs grew by %d", segs, snmpSegs)
			}
			checkNoDeliveryLoss(t, streamRes.Summary(t, ""))

			var counted uint64
			for _, r := range connRecords(t, countRes.Records(t), "retransmits", c) {
				counted += r.Uint(t, "segments")
			}
			if counted != want {
				t.Errorf("--interval: counts add up to %d, tcpi_total_retrans is %d", counted, want)
			}
			if counted != snmpSegs {
				t.Errorf("--interval: counts add up to %d, the namespace's Tcp:RetransSegs grew by %d", counted, snmpSegs)
			}
		})
	}
}
