package integration

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/tcplens/tcplens/internal/testnet"
	"github.com/tcplens/tcplens/internal/testutil"
)

// TestStatesLifetimesOnly: `states --lifetimes` prints one lifetime per
// closed connection end and nothing else, with the bytes TCP_INFO gives
// each end at close (the oracle), and its summary still counts the
// transitions it did not print.
func TestStatesLifetimesOnly(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	p := testnet.NewPair(t)
	ln := ownListener(t, p.B, testnet.IPv4)
	dst := netip.MustParseAddrPort(ln.Addr().String())
	proc := p.A.StartTcplens(t, "states", "--lifetimes", "-o", "json", "--port", fmt.Sprint(dst.Port()))

	cli, err := p.A.Dial(dst, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	srv := accept(t, ln)
	exchange(t, cli, srv, 40000)
	exchange(t, srv, cli, 2000)
	cli.CloseWrite()
	waitEOF(t, srv)
	srv.CloseWrite()
	waitEOF(t, cli)
	cliAcked, cliReceived := finalInfo(t, cli)
	srvAcked, srvReceived := finalInfo(t, srv)
	time.Sleep(200 * time.Millisecond) // records reach the reader
	res := proc.Stop()
	if res.ExitCode != 0 {
		t.Fatalf("tcplens exited %d: %s", res.ExitCode, res.Stderr)
	}
	recs := res.Records(t)
	for _, r := range recs {
		if typ := r.String(t, "type"); typ != "lifetime" && typ != "summary" {
			t.Errorf("--lifetimes printed a %q record: %v", typ, r)
		}
	}
	for _, c := range []struct {
		conn            *testnet.Conn
		acked, received uint64
	}{{cli, cliAcked, cliReceived}, {srv, srvAcked, srvReceived}} {
		lives := connRecords(t, recs, "lifetime", c.conn)
		if len(lives) != 1 {
			t.Fatalf("%s: %d lifetime records, want 1", c.conn, len(lives))
		}
		if a, r := lives[0].Uint(t, "bytes_acked"), lives[0].Uint(t, "bytes_received"); a != c.acked || r != c.received {
			t.Errorf("%s: lifetime bytes_acked %d bytes_received %d, TCP_INFO says %d %d", c.conn, a, r, c.acked, c.received)
		}
	}
	sum := res.Summary(t, "")
	if n := sum.Uint(t, "transitions"); n < 8 {
		t.Errorf("summary counts %d transitions; two ends went through at least 8", n)
	}
}
