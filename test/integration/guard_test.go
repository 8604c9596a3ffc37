package integration

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcplens/tcplens/internal/testnet"
	"github.com/tcplens/tcplens/internal/testutil"
)

// Oracles of the guard tests: connect() results (refused means the SYN
// reached B's stack, a timeout that it was dropped on the way), B's own
// kernel counters (Tcp:PassiveOpens, Tcp:OutRsts, Tcp:InSegs) and A's
// (SYNs sent), never the guard's own counters alone.

// dialFrom connects from ns, bound to src, to dst within timeout.
func dialFrom(ns *testnet.NS, src netip.Addr, dst netip.AddrPort, timeout time.Duration) error {
	d := net.Dialer{Timeout: timeout, KeepAlive: -1, LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
	return ns.Do(func() error {
		c, err := d.Dial("tcp", dst.String())
		if err == nil {
			c.Close()
		}
		return err
	})
}

// quantile is the q-quantile of durations (0 for none); it sorts them.
func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[min(len(d)-1, int(q*float64(len(d))))]
}

func isTimeout(err error) bool {
	var nerr net.Error
	return errors.As(err, &nerr) && nerr.Timeout()
}

func isRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

// secondAddr gives A a second address of the family, and returns it.
func secondAddr(t *testing.T, ns *testnet.NS, f testnet.Family) netip.Addr {
	t.Helper()
	if f == testnet.IPv6 {
		a := netip.MustParseAddr("fd00:200::3")
		ns.Run(t, "ip", "-6", "addr", "add", a.String()+"/64", "dev", ns.Link, "nodad")
		return a
	}
	a := netip.MustParseAddr("10.200.0.3")
	ns.Run(t, "ip", "addr", "add", a.String()+"/24", "dev", ns.Link)
	return a
}

func guardScenarios() []scenario {
	return []scenario{{"tc", testnet.IPv4}, {"tc", testnet.IPv6}, {"xdp", testnet.IPv4}, {"xdp", testnet.IPv6}}
}

// A blocked address cannot connect, another address of the same host can.
func TestGuardBlockCIDR(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	for _, sc := range guardScenarios() {
		t.Run(sc.String(), func(t *testing.T) {
			t.Parallel()
			p := testnet.NewPair(t)
			bad := secondAddr(t, p.A, sc.family)
			good := p.A.Addr(sc.family)
			srv := p.B.Listen(t, sc.family, 0)
			tl := p.B.StartTcplens(t, "guard", "-i", p.B.Link, "-o", "json", "--hook", sc.hook, "--interval", "1h",
				"--block", netip.PrefixFrom(bad, bad.BitLen()).String())
			before := snmp(t, p.B)
			if err := dialFrom(p.A, bad, srv.Addr, 500*time.Millisecond); !isTimeout(err) {
				t.Errorf("blocked %v: connect %v, want a timeout", bad, err)
			}
			if err := dialFrom(p.A, good, srv.Addr, 5*time.Second); err != nil {
				t.Errorf("unblocked %v: connect %v", good, err)
			}
			after := waitSettled(t, p.B)
			if got := snmpDelta(t, before, after, "Tcp:PassiveOpens"); got != 1 {
				t.Errorf("B's PassiveOpens grew by %d, want 1 (the unblocked client)", got)
			}
			res := tl.Stop()
			if res.ExitCode != 0 {
				t.Fatalf("tcplens exited %d: %s", res.ExitCode, res.Stderr)
			}
			sum := res.Summary(t, "")
			checkRange(t, sum, "matched.block", 1, 1) // one SYN in 500 ms (the first retransmission is at 1 s)
			checkRange(t, sum, "dropped", 1, 1)
			if a := p.B.Attachments(t); !a.Empty() {
				t.Errorf("left attached after exit: %v", a)
			}
		})
	}
}

// A scanner is blocked after N distinct ports and released after --block-for.
func TestGuardScanBlockAndRelease(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	for _, sc := range []scenario{{"tc", testnet.IPv4}, {"tc", testnet.IPv6}} {
		t.Run(sc.String(), func(t *testing.T) {
			t.Parallel()
			p := testnet.NewPair(t)
			srv := p.B.Listen(t, sc.family, 0)
			const n = 5
			tl := p.B.StartTcplens(t, "guard", "-i", p.B.Link, "-o", "json", "--hook", sc.hook, "--interval", "100ms",
				"--scan-ports", fmt.Sprint(n), "--scan-window", "10s", "--block-for", "2s")
			src := p.A.Addr(sc.family)
			scanPorts(t, p, src, srv.Addr, n, 2*time.Second)
			blockedAt := time.Now()
			if err := dialFrom(p.A, src, srv.Addr, 500*time.Millisecond); !isTimeout(err) {
				t.Errorf("after %d ports: connect %v, want a timeout (blocked)", n, err)
			}
			time.Sleep(2*time.Second - time.Since(blockedAt) + 100*time.Millisecond)
			if err := dialFrom(p.A, src, srv.Addr, 2*time.Second); err != nil {
				t.Errorf("after --block-for: connect %v, want released", err)
			}
			time.Sleep(300 * time.Millisecond) // a report sees the release
			res := tl.Stop()
			if res.ExitCode != 0 {
				t.Fatalf("tcplens exited %d: %s", res.ExitCode, res.Stderr)
			}
			var blocks, releases int
			for _, r := range res.Records(t) {
				switch r.Type() {
				case "auto_block":
					blocks++
					if r.String(t, "addr") != src.String() {
						t.Errorf("auto_block of %s, want %s", r.String(t, "addr"), src)
					}
				case "release":
					releases++
				}
			}
			if blocks != 1 || releases != 1 {
				t.Errorf("%d auto_block and %d release events, want one each", blocks, releases)
			}
			checkRange(t, res.Summary(t, ""), "matched.scan", 1, 1)
		})
	}
}

// A reload flips between complete rule sets: a steady stream of SYNs to a
// closed port, each dropped by rule set 1 (block A) or rule set 2 (drop
// SYNs to the port), never gets an answer, while SIGHUP swaps the sets.
func TestGuardReloadNoGap(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	p := testnet.NewPair(t)
	src, dst := p.A.Addr(testnet.IPv4), p.B.Addr(testnet.IPv4)
	const port = 20999
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yaml")
	sets := []string{
		fmt.Sprintf("block: [%s/32]\n", src),
		fmt.Sprintf("drop_syn_port: [%d]\n", port),
	}
	write := func(s string) {
		tmp := rules + ".tmp"
		if err := os.WriteFile(tmp, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, rules); err != nil {
			t.Fatal(err)
		}
	}
	write(sets[0])
	tl := p.B.StartTcplens(t, "guard", "-i", p.B.Link, "-o", "json", "--hook", "tc", "--interval", "1h", "--rules", rules)

	beforeA, beforeB := snmp(t, p.A), snmp(t, p.B)
	const reloads = 20
	done := make(chan struct{})
	var unacked int // reloads not reported within 5 s
	go func() {
		defer close(done)
		for i := 1; i <= reloads; i++ {
			time.Sleep(40 * time.Millisecond)
			write(sets[i%2])
			syscall.Kill(tl.PID(), syscall.SIGHUP)
			// The next SIGHUP only after this one's reload record: a
			// signal sent while one is pending merges with it (6.1
			// under qemu reloaded 10 times for 20 signals).
			deadline := time.Now().Add(5 * time.Second)
			for strings.Count(tl.Output().Stdout, `"type":"reload"`) < i {
				if time.Now().After(deadline) {
					unacked++
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
	}()
	var answered, attempts int
	for stop := false; !stop; {
		select {
		case <-done:
			stop = true
		default:
		}
		attempts++
		if err := dialFrom(p.A, src, netip.AddrPortFrom(dst, port), 20*time.Millisecond); !isTimeout(err) {
			answered++
		}
	}
	afterB := waitSettled(t, p.B)
	afterA := snmp(t, p.A)
	res := tl.Stop()
	if res.ExitCode != 0 {
		t.Fatalf("tcplens exited %d: %s", res.ExitCode, res.Stderr)
	}
	syns := synsSent(t, beforeA, afterA)
	t.Logf("%d connects, %d SYNs during %d reloads", attempts, syns, reloads)
	if answered > 0 {
		t.Errorf("%d of %d connects were answered: a SYN passed between rule sets", answered, attempts)
	}
	if rst := snmpDelta(t, beforeB, afterB, "Tcp:OutRsts"); rst != 0 {
		t.Errorf("B sent %d RSTs: SYNs reached it", rst)
	}
	var reloaded int
	for _, r := range res.Records(t) {
		if r.Type() == "reload" {
			if e, _ := r["error"].(string); e != "" {
				t.Errorf("reload refused: %s", e)
			}
			reloaded++
		}
	}
	if reloaded != reloads || unacked != 0 {
		t.Errorf("%d reload records, want %d (%d not reported within 5 s of their SIGHUP)", reloaded, reloads, unacked)
	}
	sum := res.Summary(t, "")
	if got := sum.Uint(t, "matched.block") + sum.Uint(t, "matched.drop_syn_port"); got != syns {
		t.Errorf("block + drop_syn_port matched %d SYNs, A sent %d", got, syns)
	}
	if sum.Uint(t, "matched.block") == 0 || sum.Uint(t, "matched.drop_syn_port") == 0 {
		t.Errorf("both rule sets should have decided some SYNs: %v", sum["matched"])
	}
}

// --dry-run drops nothing and counts what the real run drops: the same
// SYNs to a port, one run each.
func TestGuardDryRun(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	for _, dry := range []bool{true, false} {
		t.Run(fmt.Sprintf("dry=%v", dry), func(t *testing.T) {
			t.Parallel()
			p := testnet.NewPair(t)
			src, dst := p.A.Addr(testnet.IPv4), p.B.Addr(testnet.IPv4)
			args := []string{"guard", "-i", p.B.Link, "-o", "json", "--hook", "tc", "--interval", "1h", "--drop-syn-port", "20999"}
			if dry {
				args = append(args, "--dry-run")
			}
			tl := p.B.StartTcplens(t, args...)
			beforeA, beforeB := snmp(t, p.A), snmp(t, p.B)
			const n = 10
			for i := 0; i < n; i++ {
				err := dialFrom(p.A, src, netip.AddrPortFrom(dst, 20999), 300*time.Millisecond)
				if dry && !isRefused(err) || !dry && !isTimeout(err) {
					t.Fatalf("connect %d: %v", i, err)
				}
			}
			afterB := waitSettled(t, p.B)
			syns := synsSent(t, beforeA, snmp(t, p.A))
			res := tl.Stop()
			sum := res.Summary(t, "")
			checkRange(t, sum, "matched.drop_syn_port", syns, syns)
			rsts := snmpDelta(t, beforeB, afterB, "Tcp:OutRsts")
			if dry {
				checkRange(t, sum, "dropped", 0, 0)
				if rsts != syns {
					t.Errorf("B answered %d of %d SYNs with RST, want all (nothing dropped)", rsts, syns)
				}
			} else {
				checkRange(t, sum, "dropped", syns, syns)
				if rsts != 0 {
					t.Errorf("B sent %d RSTs, want 0", rsts)
				}
			}
		})
	}
}

// A bounded flood from many spoofed sources is cut to the global rate
// while a legitimate client still connects; its handshake times are
// reported (p50, p99).
func TestGuardSpoofedFlood(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	p := testnet.NewPair(t)
	prepareFloodTarget(t, p.B)
	srv := p.B.Listen(t, testnet.IPv4, 0)
	const rate = 2000
	tl := p.B.StartTcplens(t, "guard", "-i", p.B.Link, "-o", "json", "--hook", "tc", "--interval", "1h",
		"--syn-rate-global", fmt.Sprint(rate), "--syn-burst-global", "100", "--syn-rate", "100", "--syn-burst", "100")
	// The client is known before the flood (one connection gives it its
	// per-source entry), as a host's regular clients are.
	if err := dialFrom(p.A, p.A.Addr(testnet.IPv4), srv.Addr, 3*time.Second); err != nil {
		t.Fatalf("client before the flood: %v", err)
	}
	// The flood goes on in chunks while the client makes its connections
	// (bounded: at most 6 chunks of 20,000 SYNs, every one from a new
	// source: a spoofed source seen again is known, and answers to its own
	// bucket, see bpf/guard.h).
	const chunk, maxChunks = 20000, 6
	beforeB := snmp(t, p.B)
	floodStart := time.Now()
	stop := make(chan struct{})
	floodDone := make(chan error, 1)
	var floodSYNs int
	go func() {
		for i := 0; i < maxChunks; i++ {
			select {
			case <-stop:
				floodDone <- nil
				return
			default:
			}
			f := flood{syns: chunk, first: i * chunk, sources: floodMaxSources, dst: p.B.Addr(testnet.IPv4).AsSlice(), dport: floodDport, maxTime: 5 * time.Second}
			n, _, err := f.send(p.A, p.B)
			floodSYNs += n
			if err != nil {
				floodDone <- err
				return
			}
		}
		floodDone <- nil
	}()
	var lat []time.Duration
	var failed int
	for len(lat)+failed < 100 {
		time.Sleep(5 * time.Millisecond) // spread over the flood
		start := time.Now()
		if err := dialFrom(p.A, p.A.Addr(testnet.IPv4), srv.Addr, 3*time.Second); err != nil {
			failed++
		} else {
			lat = append(lat, time.Since(start))
		}
	}
	clientTime := time.Since(floodStart)
	close(stop)
	if err := <-floodDone; err != nil {
		t.Fatalf("flood: %v", err)
	}
	f := flood{syns: floodSYNs}
	afterB := waitSettled(t, p.B)
	floodTime := time.Since(floodStart)
	res := tl.Stop()
	if res.ExitCode != 0 {
		t.Fatalf("tcplens exited %d: %s", res.ExitCode, res.Stderr)
	}
	sum := res.Summary(t, "")
	total := len(lat) + failed
	pct := func(q float64) time.Duration { return quantile(lat, q) }
	passed := snmpDelta(t, beforeB, afterB, "Tcp:OutRsts") // B answers each flood SYN that reached it with RST
	t.Logf("legitimate client: %d of %d connected in %v, handshake p50 %v p99 %v; flood: %d SYNs in %v, %d reached B (rate %d/s), guard dropped %d",
		len(lat), total, clientTime.Round(time.Millisecond), pct(0.5), pct(0.99), f.syns, floodTime.Round(time.Millisecond), passed, rate, sum.Uint(t, "matched.syn_rate_global"))
	if total == 0 || float64(len(lat)) < 0.99*float64(total) {
		t.Errorf("legitimate client connected %d of %d times, want >= 99%%", len(lat), total)
	}
	if drops := sum.Uint(t, "matched.syn_rate_global"); drops+passed < uint64(f.syns)*9/10 {
		t.Errorf("dropped %d + reached B %d of %d flood SYNs: SYNs unaccounted", drops, passed, f.syns)
	}
	// What passed is bounded by the rate over the flood's duration plus the
	// burst (and the per-CPU race, within the number of CPUs per token).
	// (A's own connections and their RSTs: none, they all complete.)
	if limit := uint64(float64(rate)*floodTime.Seconds()*1.1) + 100 + uint64(runtime.NumCPU()); passed > limit {
		t.Errorf("%d flood SYNs reached B in %v, want at most %d at %d/s", passed, floodTime, limit, rate)
	}
}

// scanPorts makes src on A reach n ports of B: n-1 closed ones, each of
// which answers with a reset (so the SYN reached B), then srv's, which
// accepts. The scan rule tells ports apart by their low byte (README), so
// the closed ones skip the server's: with the kernel's random port, one
// run in 64 made only n-1 distinct ports.
func scanPorts(t *testing.T, p *testnet.Pair, src netip.Addr, srv netip.AddrPort, n int, timeout time.Duration) {
	t.Helper()
	port := uint16(20000)
	for i := 0; i < n-1; i++ {
		port++
		if port&255 == srv.Port()&255 {
			port++
		}
		if err := dialFrom(p.A, src, netip.AddrPortFrom(srv.Addr(), port), timeout); !isRefused(err) {
			t.Fatalf("port %d of the scan: %v, want refused", i+1, err)
		}
	}
	if err := dialFrom(p.A, src, srv, timeout); err != nil {
		t.Fatalf("port %d (the server's) of the scan: %v", n, err)
	}
}
