package integration

import (
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tcplens/tcplens/internal/testnet"
	"github.com/tcplens/tcplens/internal/testutil"
)

type rttSnapshot struct {
	at       time.Time // midway between the two clock reads around getsockopt
	cwnd     uint32
	srttUS   uint32
	ssthresh uint32
}

type rttRec struct {
	at             time.Time
	cwnd, ssthresh uint32
	srttUS         uint32
	reason         string
}

// TestRTTAgreesWithTCPInfo streams a bounded bulk transfer from A to B
// while tcplens rtt samples it, takes TCP_INFO snapshots of the sending
// socket every 40 ms, and checks each snapshot against the samples around
// its moment.
//
// Tolerance, and why: tcp_probe fires as a segment arrives, before TCP
// processes it, so a cwnd change shows in the sample of the next segment;
// the snapshot at time T is compared with the last sample before T, the
// first after T and any within 2 ms (clock conversion, getsockopt's own
// duration). rtt runs with its default rule (a record per --sample, per
// loss event, per ssthresh change, and per cwnd move of 25% from the
// connection's last record), so between two records cwnd may drift by
// less than 25% of the earlier one without a record: cwnd must lie in
// those samples' range widened by that 25% band, and by 2% + 2 segments
// for the change the next segment's processing makes. srtt (1 µs units)
// is judged over the run, by the medians of the snapshots and of the
// periodic samples, within 3x and with no absolute floor (see below). At most 10%
// of snapshots may miss: a cwnd reduction and its undo between two
// segments' arrivals is visible to TCP_INFO but not, by design, to
// tcp_probe. The log reports how close the nearest sample was.
// TestRTTCwndChangeThreshold checks the 25% rule itself, and
// --cwnd-change 0 (every change) keeps the 2% + 2 segments band.
func TestRTTAgreesWithTCPInfo(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	for _, f := range testnet.Families {
		t.Run(f.String(), func(t *testing.T) {
			t.Parallel()
			p := testnet.NewPair(t)
			ln := ownListener(t, p.B, f)
			dst := netip.MustParseAddrPort(ln.Addr().String())
			proc := p.A.StartTcplens(t, "rtt", "-o", "json", "--sample", "20ms", "--port", fmt.Sprint(dst.Port()))

			cli, err := p.A.Dial(dst, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer cli.Close()
			srv := accept(t, ln)
			var wg sync.WaitGroup
			wg.Add(1)
			go func() { // the receiver: reads until EOF, at most 10 s
				defer wg.Done()
				srv.SetReadDeadline(time.Now().Add(10 * time.Second))
				io.Copy(io.Discard, srv)
			}()
			stop, sent := make(chan struct{}), make(chan struct{})
			var sendErr error
			go func() { defer close(sent); sendErr = sendUntil(cli, stop, 5*time.Second) }()

			var snaps []rttSnapshot
			for i := 0; i < 30; i++ { // 30 snapshots, 40 ms apart: 1.2 s of transfer
				time.Sleep(40 * time.Millisecond)
				before := time.Now()
				info, err := cli.TCPInfo()
				after := time.Now()
				if err != nil {
					t.Fatal(err)
				}
				snaps = append(snaps, rttSnapshot{at: before.Add(after.Sub(before) / 2), cwnd: info.Snd_cwnd,
					srttUS: info.Rtt, ssthresh: info.Snd_ssthresh})
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
			var recs []rttRec
			for _, r := range connRecords(t, res.Records(t), "rtt", cli) {
				at, err := time.Parse(time.RFC3339Nano, r.String(t, "time"))
				if err != nil {
					t.Fatal(err)
				}
				recs = append(recs, rttRec{at: at, cwnd: uint32(r.Uint(t, "cwnd")), ssthresh: uint32(r.Uint(t, "ssthresh")),
					srttUS: uint32(r.Uint(t, "srtt_us")), reason: r.String(t, "reason")})
			}
			sort.Slice(recs, func(i, j int) bool { return recs[i].at.Before(recs[j].at) })
			if len(recs) < len(snaps) {
				t.Fatalf("%d samples for %d snapshots", len(recs), len(snaps))
			}
			// The kernel's rate limit: periodic samples at most one per
			// --sample, the others only for a loss event or when cwnd or
			// ssthresh changed.
			var lastPeriodic time.Time
			for i, r := range recs {
				if strings.Contains(r.reason, "periodic") {
					if !lastPeriodic.IsZero() && r.at.Sub(lastPeriodic) < 20*time.Millisecond {
						t.Errorf("periodic samples %v apart, --sample is 20ms", r.at.Sub(lastPeriodic))
					}
					lastPeriodic = r.at
				} else if i > 0 && r.cwnd == recs[i-1].cwnd && r.ssthresh == recs[i-1].ssthresh && !strings.Contains(r.reason, "loss") {
					t.Errorf("sample %+v (%s) changed nothing since %+v", r, r.reason, recs[i-1])
				}
			}

			const window = 2 * time.Millisecond
			bad, cwndExact := 0, 0
			var srttDev []float64   // |snapshot - nearest sample| / snapshot
			var srttRatio []float64 // nearest sample / snapshot
			for _, s := range snaps {
				i := sort.Search(len(recs), func(i int) bool { return !recs[i].at.Before(s.at) }) // first at or after
				var around []rttRec
				if i > 0 {
					around = append(around, recs[i-1])
				}
				if i < len(recs) {
					around = append(around, recs[i])
				}
				for _, r := range recs {
					if d := r.at.Sub(s.at); d > -window && d < window {
						around = append(around, r)
					}
				}
				nearest := around[0]
				for _, r := range around {
					if absDur(r.at.Sub(s.at)) < absDur(nearest.at.Sub(s.at)) {
						nearest = r
					}
				}
				if nearest.cwnd == s.cwnd {
					cwndExact++
				}
				srttDev = append(srttDev, absF(float64(nearest.srttUS)-float64(s.srttUS))/float64(max(s.srttUS, 1)))
				srttRatio = append(srttRatio, float64(max(nearest.srttUS, 1))/float64(max(s.srttUS, 1)))
				cwndLo, cwndHi := ^uint32(0), uint32(0)
				for _, r := range around {
					cwndLo, cwndHi = min(cwndLo, r.cwnd), max(cwndHi, r.cwnd)
				}
				// The default --cwnd-change band: no record while cwnd
				// moved by less than 25% from the last record.
				const band = 0.25
				cwndOK := float64(s.cwnd) >= float64(cwndLo)*(1-band)*0.98-2 && float64(s.cwnd) <= float64(cwndHi)*(1+band)*1.02+2
				if !cwndOK {
					bad++
					t.Logf("outside the cwnd tolerance: snapshot at %s: cwnd %d ssthresh %d srtt %dµs; samples around it: %+v",
						s.at.Format("15:04:05.000000"), s.cwnd, s.ssthresh, s.srttUS, around)
				}
			}
			// A few snapshots may fall on a cwnd reduction and its undo
			// between two segments' arrivals (spurious loss recovery on a
			// busy veth): TCP_INFO sees it, tcp_probe by design does not.
			if bad > len(snaps)/10 {
				t.Errorf("%d of %d snapshots outside the cwnd tolerance (at most %d allowed)", bad, len(snaps), len(snaps)/10)
			}
			// srtt: on a busy veth it swings several-fold within a
			// millisecond (measured: a quarter of snapshots differ by more
			// than 1.5x from a sample less than 1 ms away), so one snapshot
			// cannot be held to one sample, and an absolute floor (even
			// 100 µs) would pass anything at veth RTTs of tens of µs. Over
			// the run, the medians of the two series and the median of
			// each snapshot's ratio to its nearest sample may not both be
			// more than 3x apart, relative only: a wrong unit or scale
			// (the kernel keeps srtt <<3: 8x) or a field read from the
			// wrong place moves both. Either alone drifts on a loaded
			// machine: the medians once 3.3x apart while the pairs agreed
			// within 21% (samples come as ACKs arrive, snapshots while the
			// sender waits), and the pairs up to 64% off while the medians
			// agreed.
			var snapSrtt, recSrtt []float64
			for _, s := range snaps {
				snapSrtt = append(snapSrtt, float64(s.srttUS))
			}
			for _, r := range recs {
				// Periodic samples only: cwnd-change records come in
				// bursts when ACKs flow fast, a biased sample of srtt.
				if strings.Contains(r.reason, "periodic") && !r.at.Before(snaps[0].at) && !r.at.After(snaps[len(snaps)-1].at) {
					recSrtt = append(recSrtt, float64(r.srttUS))
				}
			}
			if len(recSrtt) < len(snaps)/3 {
				t.Errorf("only %d samples during the %d snapshots: too few to compare srtt", len(recSrtt), len(snaps))
			} else {
				ms, mr := median(snapSrtt), median(recSrtt)
				t.Logf("srtt median: TCP_INFO %.0fµs, tcplens %.0fµs", ms, mr)
				r := median(srttRatio)
				t.Logf("srtt: the nearest sample is %.2fx the snapshot (median over %d snapshots)", r, len(srttRatio))
				if (ms > mr*3 || mr > ms*3) && (r > 3 || r < 1.0/3) {
					t.Errorf("srtt: medians %.0fµs (TCP_INFO) and %.0fµs (tcplens), nearest sample %.2fx the snapshot: both more than 3x apart", ms, mr, r)
				}
			}
			sort.Float64s(srttDev)
			t.Logf("%s: %d samples, %d snapshots, %d outside the cwnd tolerance; nearest sample: cwnd equal in %d, srtt off by median %.0f%%, max %.0f%%",
				cli, len(recs), len(snaps), bad, cwndExact, 100*srttDev[len(srttDev)/2], 100*srttDev[len(srttDev)-1])
			// Runs skipped for recursion (tcp_probe re-entered from a softirq
			// on a busy CPU, as when other tests run alongside) are counted in
			// lost too; only records the ring buffer had to drop are a defect.
			sum := res.Summary(t, "")
			if n := sum.Uint(t, "lost_by_cause.ring_buffer"); n != 0 {
				t.Errorf("lost %d records to a full ring buffer", n)
			}
			t.Logf("lost %d (recursion %d)", sum.Uint(t, "lost"), sum.Uint(t, "lost_by_cause.recursion"))
		})
	}
}

func absDur(d time.Duration) time.Duration { return max(d, -d) }

func median(v []float64) float64 {
	v = append([]float64(nil), v...)
	sort.Float64s(v)
	return v[len(v)/2]
}

func absF(v float64) float64 { return max(v, -v) }
