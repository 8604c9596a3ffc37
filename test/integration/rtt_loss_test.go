package integration

import (
	"io"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tcplens/tcplens/internal/testnet"
	"github.com/tcplens/tcplens/internal/testutil"
)

// TestRTTRecordsLossEvents: rtt's default makes one record for each loss
// event (the connection entered fast recovery or RTO recovery). B's link
// goes down for a moment while A streams to B, so A times out. The
// oracle is A's namespace's own counters: every loss event is an RTO
// (TcpExt:TCPTimeouts) or a recovery entry (TCPSackRecovery,
// TCPRenoRecovery), so the records with reason "loss" are at least one
// when those grew and at most their sum (an RTO that repeats in the same
// episode counts in TCPTimeouts again but is not a new loss event).
func TestRTTRecordsLossEvents(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	p := testnet.NewPair(t)
	ln := ownListener(t, p.B, testnet.IPv4)
	dst := netip.MustParseAddrPort(ln.Addr().String())
	proc := p.A.StartTcplens(t, "rtt", "-o", "json", "--port", strconv.Itoa(int(dst.Port())))
	before, err := p.A.SNMP()
	if err != nil {
		t.Fatal(err)
	}

	cli, err := p.A.Dial(dst, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	srv := accept(t, ln)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		srv.SetReadDeadline(time.Now().Add(15 * time.Second))
		io.Copy(io.Discard, srv)
	}()
	stop, sent := make(chan struct{}), make(chan struct{})
	var sendErr error
	go func() { defer close(sent); sendErr = sendUntil(cli, stop, 12*time.Second) }()
	// A flap nearly always makes A time out; on a loaded machine one can
	// fall between two sends, so a few tries bound that (as in the
	// retrans test). Each try waits for the RTO and the recovery to end.
	for attempt := 0; attempt < 6; attempt++ { // a flap with nothing in flight (a slow, emulated receiver) makes no retransmission
		time.Sleep(300 * time.Millisecond)
		p.B.FlapLink(t, 500*time.Millisecond)
		time.Sleep(1500 * time.Millisecond)
		if now, err := p.A.SNMP(); err == nil && lossEpisodes(before, now) > 0 {
			break
		}
	}
	close(stop)
	<-sent
	cli.CloseWrite()
	wg.Wait()
	if sendErr != nil {
		t.Fatalf("send: %v", sendErr)
	}
	time.Sleep(200 * time.Millisecond)
	res := proc.Stop()
	if res.ExitCode != 0 {
		t.Fatalf("tcplens exited %d: %s", res.ExitCode, res.Stderr)
	}
	after, err := p.A.SNMP()
	if err != nil {
		t.Fatal(err)
	}
	episodes := lossEpisodes(before, after)
	if episodes == 0 {
		t.Fatalf("the link flap caused no timeout or recovery in A's counters: the test proves nothing")
	}
	losses := 0
	for _, r := range connRecords(t, res.Records(t), "rtt", cli) {
		if strings.Contains(r.String(t, "reason"), "loss") {
			losses++
		}
	}
	if losses == 0 || uint64(losses) > episodes {
		t.Errorf("%d records for a loss event; the kernel counted %d timeouts and recovery entries (want 1..%d)",
			losses, episodes, episodes)
	}
	t.Logf("%d loss records, %d timeouts + recovery entries", losses, episodes)
}

// lossEpisodes is how many RTOs and recovery entries the kernel counted
// between two SNMP readings of one namespace.
func lossEpisodes(before, after map[string]uint64) uint64 {
	n := uint64(0)
	for _, k := range []string{"TcpExt:TCPTimeouts", "TcpExt:TCPSackRecovery", "TcpExt:TCPRenoRecovery"} {
		n += after[k] - before[k]
	}
	return n
}
