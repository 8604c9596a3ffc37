package integration

// What a spoofed SYN flood aimed at a listening service does to a
// legitimate client of that service, without guard and with it, in the
// same run (sub-benchmarks alternate with -count):
//
//	sudo go test -run '^$' -bench GuardFloodClient -benchtime 600000x -count 3 ./test/integration/
//
// b.N SYNs from fresh spoofed sources go to the server's own port in chunks
// of 20,000 while the client connects every 5 ms. Reported: the share of
// the client's connections that succeeded, its handshake p50 and p99, and
// what the server's kernel saw (B's Tcp:InSegs, TcpExt:SyncookiesSent and
// TcpExt:ListenDrops): the oracle is B's stack, not tcplens.

import (
	"testing"
	"time"

	"github.com/tcplens/tcplens/internal/testnet"
	"github.com/tcplens/tcplens/internal/testutil"
)

func BenchmarkGuardFloodClient(b *testing.B) {
	testutil.RequirePrivileged(b)
	for _, mode := range []string{"no-guard", "guard"} {
		b.Run(mode, func(b *testing.B) {
			p := testnet.NewPair(b)
			prepareFloodTarget(b, p.B)
			// B routes the spoofed range back through A, as a server routes
			// the internet through its gateway: without a route the kernel
			// drops each SYN before queueing it (TcpExt:ListenDrops), which
			// no flooded server does. A drops the SYN-ACKs (not its
			// addresses, no forwarding).
			p.B.Run(b, "ip", "route", "add", "198.18.0.0/15", "via", p.A.Addr(testnet.IPv4).String())
			srv := p.B.Listen(b, testnet.IPv4, 0)
			var tl *testnet.Process
			if mode == "guard" {
				tl = p.B.StartTcplens(b, "guard", "-i", p.B.Link, "-o", "json", "--hook", "tc", "--interval", "1h",
					"--syn-rate-global", "2000", "--syn-burst-global", "100", "--syn-rate", "100", "--syn-burst", "100")
			}
			// Known before the flood, as a host's regular clients are (with
			// guard: it has its per-source entry).
			if err := dialFrom(p.A, p.A.Addr(testnet.IPv4), srv.Addr, 3*time.Second); err != nil {
				b.Fatalf("client before the flood: %v", err)
			}
			const chunk = 20000
			before := snmp(b, p.B)
			b.ResetTimer()
			floodStart := time.Now()
			floodDone := make(chan error, 1)
			go func() {
				for first := 0; first < b.N; first += chunk {
					f := flood{syns: min(chunk, b.N-first), first: first, sources: floodMaxSources,
						dst: p.B.Addr(testnet.IPv4).AsSlice(), dport: srv.Addr.Port(), maxTime: 10 * time.Second}
					if _, _, err := f.send(p.A, p.B); err != nil {
						floodDone <- err
						return
					}
				}
				floodDone <- nil
			}()
			var lat []time.Duration
			failed := 0
			// At least one connection, even when the flood is over first
			// (the framework's first run has b.N = 1).
			for {
				start := time.Now()
				if err := dialFrom(p.A, p.A.Addr(testnet.IPv4), srv.Addr, 3*time.Second); err != nil {
					failed++
				} else {
					lat = append(lat, time.Since(start))
				}
				var err error
				select {
				case err = <-floodDone:
				case <-time.After(5 * time.Millisecond):
					continue
				}
				if err != nil {
					b.Fatalf("flood: %v", err)
				}
				break
			}
			floodTime := time.Since(floodStart)
			b.StopTimer()
			after := waitSettled(b, p.B)
			if tl != nil {
				if res := tl.Stop(); res.ExitCode != 0 {
					b.Fatalf("tcplens exited %d: %s", res.ExitCode, res.Stderr)
				}
			}
			total := len(lat) + failed
			pct := func(q float64) float64 { return float64(quantile(lat, q)) / 1e6 }
			delta := func(k string) float64 { return float64(snmpDelta(b, before, after, k)) }
			b.ReportMetric(100*float64(len(lat))/float64(total), "client-ok-%")
			b.ReportMetric(float64(total), "client-conns")
			b.ReportMetric(floodTime.Seconds(), "flood-s")
			b.ReportMetric(pct(0.5), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
			b.ReportMetric(delta("Tcp:InSegs"), "B-in-segs")
			b.ReportMetric(delta("TcpExt:SyncookiesSent"), "B-cookies")
			b.ReportMetric(delta("TcpExt:ListenDrops"), "B-listen-drops")
			b.ReportMetric(delta("TcpExt:TCPReqQFullDrop"), "B-reqq-full-drops")
			b.ReportMetric(0, "ns/op")
			b.Logf("%s: client %d of %d, p50 %.2f ms, p99 %.2f ms", mode, len(lat), total, pct(0.5), pct(0.99))
		})
	}
}
