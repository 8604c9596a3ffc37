package conn

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// seriesRecord is one `top -o json --tcp-info` conn record as recorded.
type seriesRecord struct {
	Time    time.Time `json:"time"`
	State   string    `json:"state"`
	SendQ   uint32    `json:"send_q"`
	RecvQ   uint32    `json:"recv_q"`
	Verdict string    `json:"verdict"`
	TCPInfo *TCPInfo  `json:"tcp_info"`
}

func stateNumber(t *testing.T, name string) uint8 {
	for i, n := range stateNames {
		if n == name {
			return uint8(i)
		}
	}
	t.Fatalf("no state %q", name)
	return 0
}

// runLength writes verdicts as "ok*1 lossy*2".
func runLength(vs []string) string {
	var parts []string
	for i := 0; i < len(vs); {
		j := i
		for j < len(vs) && vs[j] == vs[i] {
			j++
		}
		parts = append(parts, fmt.Sprintf("%s*%d", vs[i], j-i))
		i = j
	}
	return strings.Join(parts, " ")
}

// TestJudgeRecordedSeries replays TCP_INFO series recorded every 200 ms
// by TestTopVerdicts and every 250 ms by TestTopRTTAndSendBuffer
// (TCPLENS_TOP_RECORD) through the rules. The
// expectations are the scenario's timeline, not the recording's verdicts:
// the receiver read through a small window for 2.5 s, then stopped; the
// bulk sender's link went down 1 s in, for good; the application-limited
// sender wrote 100 bytes every 50 ms; the idle connection did nothing.
func TestJudgeRecordedSeries(t *testing.T) {
	for _, tc := range []struct {
		series string
		want   string
	}{
		{"idle", "ok*28"},
		{"application-limited", "ok*1 application-limited*27"},
		// Reading stops at 2.5 s: the 13th interval.
		{"receiver", "ok*1 receiver-limited*12 zero-window*15"},
		// The link goes down in the 6th interval: the window is full of
		// unacknowledged data, then the first timeout, then silence.
		{"link-down", "ok*5 receiver-limited*1 lossy*2 stalled*20"},
		// Recorded every 250 ms by TestTopRTTAndSendBuffer: 100 bytes
		// every 50 ms, on a path whose ACKs queue behind a bulk transfer
		// from 0.5 s on (the 3rd interval: srtt 100+ ms, min_rtt µs).
		{"rtt-inflated", "ok*1 application-limited*1 ok*1 rtt-inflated*11"},
		// A bulk sender with a 64 KiB SO_SNDBUF on the same path: limited
		// by its buffer once the ACKs' queue builds.
		{"send-buffer-limited", "ok*2 send-buffer-limited*12"},
	} {
		t.Run(tc.series, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", "series", tc.series+".jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			sc := bufio.NewScanner(f)
			sc.Buffer(nil, 1<<20)
			var prev *seriesRecord
			var got []string
			for sc.Scan() {
				var r seriesRecord
				if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
					t.Fatal(err)
				}
				in := Interval{Sample: Sample{State: stateNumber(t, r.State), WQueue: r.SendQ, RQueue: r.RecvQ, Info: r.TCPInfo}}
				if prev != nil {
					in.Prev, in.Elapsed = prev.TCPInfo, r.Time.Sub(prev.Time)
				}
				v, reasons := Judge(in, DefaultThresholds)
				got = append(got, v.String())
				if v != OK && len(reasons) == 0 {
					t.Errorf("%s without a reason", v)
				}
				prev = &r
			}
			if g := runLength(got); g != tc.want {
				t.Errorf("verdicts %s, want %s", g, tc.want)
			}
		})
	}
}

// busy is a sender in ESTABLISHED that sent and had acknowledged data
// through a 1 s interval, limited by nothing: the base each rule's cases
// change one thing of.
func busy() (prev, cur TCPInfo, s Sample) {
	prev = TCPInfo{State: StateEstablished, RTO: 204000, RTT: 100, MinRTT: 50, SndCwnd: 10, SndWnd: 65535,
		BytesAcked: 1_000_000, SegsOut: 1000, DataSegsOut: 990, BusyTime: 5_000_000, TotalRetrans: 0}
	cur = prev
	cur.BytesAcked += 10_000_000
	cur.SegsOut += 7000
	cur.DataSegsOut += 7000
	cur.BusyTime += 1_000_000 // busy the whole second
	s = Sample{State: StateEstablished}
	return prev, cur, s
}

// quiet makes the interval one without data sent or acknowledged.
func quiet(p, c *TCPInfo) {
	c.BytesAcked, c.SegsOut, c.DataSegsOut, c.BusyTime = p.BytesAcked, p.SegsOut, p.DataSegsOut, p.BusyTime
}

func judge(prev, cur TCPInfo, s Sample) Verdict {
	s.Info = &cur
	v, _ := Judge(Interval{Sample: s, Prev: &prev, Elapsed: time.Second}, DefaultThresholds)
	return v
}

// TestJudgeRules checks each rule alone at its threshold: just past it the
// rule holds, just short of it the connection is ok.
func TestJudgeRules(t *testing.T) {
	type change func(prev, cur *TCPInfo, s *Sample)
	for _, tc := range []struct {
		name  string
		want  Verdict
		hold  change
		short change
	}{
		{"receiver-limited", ReceiverLimited,
			func(p, c *TCPInfo, s *Sample) { c.RwndLimited = p.RwndLimited + 500_000 },
			func(p, c *TCPInfo, s *Sample) { c.RwndLimited = p.RwndLimited + 499_000 }},
		{"receiver-limited needs progress", OK,
			func(p, c *TCPInfo, s *Sample) { c.RwndLimited = p.RwndLimited + 900_000; c.BytesAcked = p.BytesAcked },
			func(p, c *TCPInfo, s *Sample) {}},
		{"send-buffer-limited", SendBufferLimited,
			func(p, c *TCPInfo, s *Sample) { c.SndbufLimited = p.SndbufLimited + 500_000 },
			func(p, c *TCPInfo, s *Sample) { c.SndbufLimited = p.SndbufLimited + 499_000 }},
		{"application-limited", ApplicationLimited,
			func(p, c *TCPInfo, s *Sample) { c.BusyTime = p.BusyTime + 499_000 },
			func(p, c *TCPInfo, s *Sample) { c.BusyTime = p.BusyTime + 500_000 }},
		{"idle is ok, not application-limited", OK,
			func(p, c *TCPInfo, s *Sample) { *c = *p },
			func(p, c *TCPInfo, s *Sample) {}},
		{"lossy", Lossy, // 2% of 7000 segments is 140
			func(p, c *TCPInfo, s *Sample) { c.TotalRetrans = p.TotalRetrans + 140 },
			func(p, c *TCPInfo, s *Sample) { c.TotalRetrans = p.TotalRetrans + 139 }},
		{"lossy between timeouts", Lossy,
			func(p, c *TCPInfo, s *Sample) { c.CAState, c.Retransmits = caLoss, 1 },
			func(p, c *TCPInfo, s *Sample) { c.CAState, c.Retransmits = caLoss, 0 }},
		{"rtt-inflated", RTTInflated, // 4x min_rtt and 20 ms above it
			func(p, c *TCPInfo, s *Sample) { c.MinRTT, c.RTT = 6000, 26000 },
			func(p, c *TCPInfo, s *Sample) { c.MinRTT, c.RTT = 6000, 25999 }},
		{"rtt-inflated needs 20 ms", RTTInflated,
			func(p, c *TCPInfo, s *Sample) { c.MinRTT, c.RTT = 1000, 21000 },
			func(p, c *TCPInfo, s *Sample) { c.MinRTT, c.RTT = 1000, 20999 }},
		{"zero-window", ZeroWindow,
			func(p, c *TCPInfo, s *Sample) {
				c.SndWnd, s.WQueue, c.BytesAcked, c.BusyTime = 0, 1000, p.BytesAcked, p.BusyTime
			},
			func(p, c *TCPInfo, s *Sample) { c.SndWnd, s.WQueue = 0, 1000 }}, // progress: it opened and shut
		{"zero-window probed", ZeroWindow,
			func(p, c *TCPInfo, s *Sample) { c.SndWnd, s.WQueue, c.Probes = 0, 1000, 1 },
			func(p, c *TCPInfo, s *Sample) { c.SndWnd, s.WQueue, c.Probes = 0, 0, 1 }}, // nothing to send
		// A stalled sender sends nothing new: quiet() takes the interval's
		// data and busy time back.
		{"stalled", Stalled,
			func(p, c *TCPInfo, s *Sample) { quiet(p, c); c.Unacked, c.LastAckRecvMS = 5, 3*204 },
			func(p, c *TCPInfo, s *Sample) { quiet(p, c); c.Unacked, c.LastAckRecvMS = 5, 3*204-1 }},
		{"stalled after two backoffs", Stalled,
			func(p, c *TCPInfo, s *Sample) { quiet(p, c); c.Unacked, c.Backoff = 5, 2 },
			func(p, c *TCPInfo, s *Sample) { quiet(p, c); c.Unacked, c.Backoff = 5, 1 }},
		{"stalled: zero-window probes unanswered", Stalled,
			func(p, c *TCPInfo, s *Sample) { quiet(p, c); c.SndWnd, s.WQueue, c.Probes = 0, 1000, 2 },
			func(p, c *TCPInfo, s *Sample) { quiet(p, c); c.SndWnd, s.WQueue, c.Probes = 0, 1000, 0 }}, // zero-window, below
		{"handshake-retrying", HandshakeRetrying,
			func(p, c *TCPInfo, s *Sample) { *p, *c = TCPInfo{}, TCPInfo{Retransmits: 1}; s.State = StateSynSent },
			func(p, c *TCPInfo, s *Sample) { *p, *c = TCPInfo{}, TCPInfo{}; s.State = StateSynSent }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prev, cur, s := busy()
			if v := judge(prev, cur, s); v != OK {
				t.Fatalf("base case: %s, want ok", v)
			}
			tc.hold(&prev, &cur, &s)
			if v := judge(prev, cur, s); v != tc.want {
				t.Errorf("past the threshold: %s, want %s", v, tc.want)
			}
			prev, cur, s = busy()
			tc.short(&prev, &cur, &s)
			if v := judge(prev, cur, s); v == tc.want && tc.want != OK {
				t.Errorf("short of the threshold: still %s", v)
			}
		})
	}
}

func TestJudgeListenerAndReset(t *testing.T) {
	ln := Sample{State: StateListen, RQueue: 2, WQueue: 1}
	if v, _ := Judge(Interval{Sample: ln}, DefaultThresholds); v != BacklogFull {
		t.Errorf("accept queue 2 over backlog 1: %s, want backlog-full", v)
	}
	ln.RQueue = 1
	if v, _ := Judge(Interval{Sample: ln}, DefaultThresholds); v != OK {
		t.Errorf("accept queue 1 of backlog 1, no overflows: %s, want ok", v)
	}
	if v, _ := Judge(Interval{Sample: ln, NetNSOverflows: 3}, DefaultThresholds); v != BacklogFull {
		t.Errorf("accept queue at backlog with overflows in the namespace: %s, want backlog-full", v)
	}
	ln.RQueue = 0
	if v, _ := Judge(Interval{Sample: ln, NetNSOverflows: 3}, DefaultThresholds); v != OK {
		t.Errorf("empty accept queue, overflows elsewhere in the namespace: %s, want ok", v)
	}
	prev, cur, s := busy()
	s.Info = &cur
	if v, _ := Judge(Interval{Sample: s, Prev: &prev, Elapsed: time.Second, ResetSeen: true}, DefaultThresholds); v != Reset {
		t.Errorf("reset seen: %s, want reset", v)
	}
}

func TestVerdictNamesRoundTrip(t *testing.T) {
	for _, n := range VerdictNames() {
		v, ok := ParseVerdict(n)
		if !ok || v.String() != n {
			t.Errorf("%s: parsed as %v %v", n, v, ok)
		}
	}
}
