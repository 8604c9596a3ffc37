package integration

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcplens/tcplens/internal/testnet"
	"github.com/tcplens/tcplens/internal/testutil"
	"github.com/tcplens/tcplens/internal/testutil/prom"
)

// Oracles of the agent's guard tests: connect() results, the SYNs the
// client's namespace sent (Tcp:ActiveOpens, one first SYN per connect(),
// plus TcpExt:TCPSynRetrans), the server namespace's Tcp:PassiveOpens, and
// a real Prometheus reading the agent's metrics.

// blockedDialTimeout lets a dropped connect() send its first SYN and one
// retransmission (at 1 s); the count is the kernel's, whatever it is.
const blockedDialTimeout = 1500 * time.Millisecond

// guardDropPort is a port the tests' rules drop all TCP to.
const guardDropPort = 20999

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestAgentGuardMetrics runs the agent in B with a guard rules file that
// blocks one of A's IPv4 addresses and drops all TCP to one port, scraped
// every second by a real Prometheus in B. From the blocked address and to
// the dropped port (over IPv6) connect() times out; from A's other address
// it succeeds, and B's PassiveOpens grows by that one. Prometheus must
// answer: drops by rule block and by rule drop_port each equal the SYNs
// A's kernel sent for them, nothing counted as a dry run, and the SYNs
// seen on B's link equal all that A sent (the link is the pool's second
// copy: lo is attached first). XDP and TC (tcx, or netlink TC on 6.1).
func TestAgentGuardMetrics(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	for _, hook := range []string{"xdp", "tc"} {
		t.Run(hook, func(t *testing.T) {
			t.Parallel()
			p := testnet.NewPair(t)
			bad := secondAddr(t, p.A, testnet.IPv4)
			good := p.A.Addr(testnet.IPv4)
			srv := p.B.Listen(t, testnet.IPv4, 0)
			rules := filepath.Join(t.TempDir(), "guard.yaml")
			writeFile(t, rules, fmt.Sprintf("# the test's rules\nblock:\n  - %s/32\ndrop_port: [%d]\n", bad, guardDropPort))
			// lo first: it takes the pool's first copy, so B's link runs in a
			// copy loaded later, which must share the first one's maps.
			a := startAgent(t, p.B, "-i", "lo", "-i", p.B.Link, "--hook", hook, "--events", "states", "--netns", "self", "--guard-rules", rules)
			s := prom.Start(t, prom.Options{Targets: []string{agentListen}, NetNS: p.B.Name})

			b0, s0 := snmp(t, p.B), snmp(t, p.A)
			if err := dialFrom(p.A, bad, srv.Addr, blockedDialTimeout); !isTimeout(err) {
				t.Errorf("blocked %v: connect %v, want a timeout", bad, err)
			}
			s1 := snmp(t, p.A)
			dropped := netip.AddrPortFrom(p.B.Addr(testnet.IPv6), guardDropPort)
			if err := dialFrom(p.A, p.A.Addr(testnet.IPv6), dropped, blockedDialTimeout); !isTimeout(err) {
				t.Errorf("to dropped port %v: connect %v, want a timeout", dropped, err)
			}
			s2 := snmp(t, p.A)
			if err := dialFrom(p.A, good, srv.Addr, 10*time.Second); err != nil {
				t.Errorf("unblocked %v: connect %v", good, err)
			}
			s3 := snmp(t, p.A)
			b1 := waitSettled(t, p.B)
			if got := snmpDelta(t, b0, b1, "Tcp:PassiveOpens"); got != 1 {
				t.Errorf("B's PassiveOpens grew by %d, want 1 (the unblocked client)", got)
			}
			blockSYNs, portSYNs := synsSent(t, s0, s1), synsSent(t, s1, s2)
			if blockSYNs == 0 || portSYNs == 0 {
				t.Fatalf("A sent %d SYNs from the blocked address and %d to the dropped port: the test proves nothing", blockSYNs, portSYNs)
			}
			t.Logf("A sent %d SYNs from the blocked address, %d to the dropped port", blockSYNs, portSYNs)
			s.Sync(t)
			if got := query(t, s, `tcplens_guard_drops_total{rule="block",mode="enforce"}`); got != float64(blockSYNs) {
				t.Errorf("guard drops by block = %v, want the %d SYNs A sent from %v", got, blockSYNs, bad)
			}
			if got := query(t, s, `tcplens_guard_drops_total{rule="drop_port",mode="enforce"}`); got != float64(portSYNs) {
				t.Errorf("guard drops by drop_port = %v, want the %d SYNs A sent to %v", got, portSYNs, dropped)
			}
			if got, want := query(t, s, fmt.Sprintf(`tcplens_syn_total{interface=%q,direction="in"}`, p.B.Link)), synsSent(t, s0, s3); got != float64(want) {
				t.Errorf("tcplens_syn_total in on %s = %v, want the %d SYNs A sent", p.B.Link, got, want)
			}
			if got := query(t, s, fmt.Sprintf(`tcplens_guard_interface_drops_total{interface=%q}`, p.B.Link)); got != float64(blockSYNs+portSYNs) {
				t.Errorf("guard drops on %s = %v, want the %d SYNs A sent to be dropped", p.B.Link, got, blockSYNs+portSYNs)
			}
			if got := query(t, s, `tcplens_guard_interface_drops_total{interface="lo"}`); got != 0 {
				t.Errorf("guard drops on lo = %v, want 0", got)
			}
			if got := query(t, s, `sum(tcplens_guard_drops_total{mode="dry_run"})`); got != 0 {
				t.Errorf("dry-run drops = %v, want 0 (enforcing)", got)
			}
			if got := query(t, s, `tcplens_guard_dry_run`); got != 0 {
				t.Errorf("tcplens_guard_dry_run = %v, want 0", got)
			}
			if err := prom.CheckMetrics(t, []byte(a.metrics(t))); err != nil {
				t.Errorf("promtool check metrics: %v", err)
			}
			a.stop(t)
			if att := p.B.Attachments(t); !att.Empty() {
				t.Errorf("after SIGTERM, %s has %s", p.B.Link, att)
			}
		})
	}
}

// metricValue is one series' value in an exposition, or -1 when absent.
func metricValue(body, series string) float64 {
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// TestAgentGuardReload: SIGHUP reads the guard rules again. A blocked
// address first times out; after a reload into a dry run it connects (B's
// PassiveOpens grows) and its SYN counts as a would-drop; a broken file is
// refused with its line, counted as a failed reload, and the dry-run rules
// stay in force. The would-drops equal every segment A sent meanwhile.
func TestAgentGuardReload(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	p := testnet.NewPair(t)
	bad := secondAddr(t, p.A, testnet.IPv4)
	srv := p.B.Listen(t, testnet.IPv4, 0)
	rules := filepath.Join(t.TempDir(), "guard.yaml")
	block := fmt.Sprintf("block: [%s/32]\n", bad)
	writeFile(t, rules, block)
	a := startAgent(t, p.B, "-i", p.B.Link, "--hook", "tc", "--events", "states", "--netns", "self", "--guard-rules", rules)

	s0 := snmp(t, p.A)
	if err := dialFrom(p.A, bad, srv.Addr, blockedDialTimeout); !isTimeout(err) {
		t.Errorf("blocked %v: connect %v, want a timeout", bad, err)
	}
	enforced := synsSent(t, s0, snmp(t, p.A))

	reload := func(text, logged string) {
		t.Helper()
		writeFile(t, rules, text)
		n := strings.Count(a.out.String(), logged)
		if err := a.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		testnet.WaitFor(t, 30*time.Second, "the agent to log "+logged, func() bool { return strings.Count(a.out.String(), logged) > n })
	}
	reload("dry_run: true\n"+block, "reload: guard rules from")
	b0, s1 := snmp(t, p.B), snmp(t, p.A)
	if err := dialFrom(p.A, bad, srv.Addr, 10*time.Second); err != nil {
		t.Errorf("after the reload into a dry run, %v: connect %v, want it to connect", bad, err)
	}
	reload("dry_run: true\nblock:\n  - not-an-address\n", "reload: keeping the guard rules in force")
	if !strings.Contains(a.out.String(), "line 3: block") {
		t.Errorf("the refused reload does not name the file's line 3:\n%s", a.out)
	}
	// The dry-run rules still hold: the address connects again.
	if err := dialFrom(p.A, bad, srv.Addr, 10*time.Second); err != nil {
		t.Errorf("after a refused reload, %v: connect %v, want the dry-run rules still in force", bad, err)
	}
	// In a dry run the block rule matches every segment from the address,
	// not only SYNs: all that A sent since the reload.
	wouldDrop := segmentsSent(t, s1, waitSettled(t, p.A))
	if got := snmpDelta(t, b0, waitSettled(t, p.B), "Tcp:PassiveOpens"); got != 2 {
		t.Errorf("B's PassiveOpens grew by %d under the dry run, want 2", got)
	}

	t.Logf("A sent %d SYNs while enforcing, %d segments in the dry run", enforced, wouldDrop)
	body := a.metrics(t)
	wantMetrics(t, body, "", map[string]uint64{
		`tcplens_guard_drops_total{mode="enforce",rule="block"}`: enforced,
		`tcplens_guard_drops_total{mode="dry_run",rule="block"}`: wouldDrop,
		`tcplens_guard_reloads_total{result="ok"}`:               1,
		`tcplens_guard_reloads_total{result="failed"}`:           1,
		`tcplens_guard_dry_run`:                                  1,
	})
	a.stop(t)
	if att := p.B.Attachments(t); !att.Empty() {
		t.Errorf("after SIGTERM, %s has %s", p.B.Link, att)
	}
}

// TestAgentGuardScanBlock: with a scan rule in the agent's guard rules, a
// source of A that reaches N ports of B (N-1 closed ones answer with a
// reset, so its SYNs reached B) is blocked: its next connect() times out,
// and /metrics says one block begun, one source blocked now, and drops by
// rule scan = the SYNs A sent meanwhile. After block_for it connects again,
// and /metrics says one release and none blocked. IPv6, TC (tcx, or
// netlink TC on 6.1).
func TestAgentGuardScanBlock(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	blockFor := 3 * time.Second
	if testutil.Emulated() != "" {
		blockFor = 10 * time.Second // the checks within the block take longer
	}
	p := testnet.NewPair(t)
	srv := p.B.Listen(t, testnet.IPv6, 0)
	const n = 5
	rules := filepath.Join(t.TempDir(), "guard.yaml")
	writeFile(t, rules, fmt.Sprintf("scan_ports: %d\nscan_window: 30s\nblock_for: %s\n", n, blockFor))
	a := startAgent(t, p.B, "-i", p.B.Link, "--hook", "tc", "--events", "states", "--netns", "self", "--guard-rules", rules)

	src := p.A.Addr(testnet.IPv6)
	scanPorts(t, p, src, srv.Addr, n, 5*time.Second)
	blockedAt := time.Now()
	s0 := snmp(t, p.A)
	if err := dialFrom(p.A, src, srv.Addr, 500*time.Millisecond); !isTimeout(err) {
		t.Errorf("after %d ports: connect %v, want a timeout (blocked)", n, err)
	}
	scanSYNs := synsSent(t, s0, snmp(t, p.A))
	body := a.metrics(t)
	if time.Since(blockedAt) >= blockFor {
		t.Fatalf("the checks within the block took %v, longer than block_for %v", time.Since(blockedAt), blockFor)
	}
	wantMetrics(t, body, "while blocked", map[string]uint64{
		`tcplens_guard_source_blocks_total`:                     1,
		`tcplens_guard_blocked_sources`:                         1,
		`tcplens_guard_source_releases_total`:                   0,
		`tcplens_guard_drops_total{mode="enforce",rule="scan"}`: scanSYNs,
	})

	time.Sleep(time.Until(blockedAt.Add(blockFor + 200*time.Millisecond)))
	if err := dialFrom(p.A, src, srv.Addr, 5*time.Second); err != nil {
		t.Errorf("after block_for: connect %v, want released", err)
	}
	body = a.metrics(t)
	wantMetrics(t, body, "after block_for", map[string]uint64{
		`tcplens_guard_source_blocks_total`:   1,
		`tcplens_guard_blocked_sources`:       0,
		`tcplens_guard_source_releases_total`: 1,
	})
	a.stop(t)
	if att := p.B.Attachments(t); !att.Empty() {
		t.Errorf("after SIGTERM, %s has %s", p.B.Link, att)
	}
}

// wantMetrics checks each series of want in a /metrics body; when, if set,
// says at which moment in the failure message.
func wantMetrics(t *testing.T, body, when string, want map[string]uint64) {
	t.Helper()
	for series, v := range want {
		if got := metricValue(body, series); got != float64(v) {
			if when != "" {
				t.Errorf("%s: %s = %v, want %d", when, series, got, v)
			} else {
				t.Errorf("%s = %v, want %d", series, got, v)
			}
		}
	}
}
