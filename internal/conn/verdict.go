package conn

import (
	"fmt"
	"time"
)

// Verdict is one word on a connection's health. Larger is worse: a
// connection gets the worst verdict whose rule holds, and the reasons of
// every rule that holds.
type Verdict uint8

const (
	OK Verdict = iota
	ApplicationLimited
	RTTInflated
	SendBufferLimited
	ReceiverLimited
	Lossy
	HandshakeRetrying
	BacklogFull
	ZeroWindow
	Stalled
	Reset
)

var verdictNames = [...]string{"ok", "application-limited", "rtt-inflated", "send-buffer-limited",
	"receiver-limited", "lossy", "handshake-retrying", "backlog-full", "zero-window", "stalled", "reset"}

func (v Verdict) String() string {
	if int(v) < len(verdictNames) {
		return verdictNames[v]
	}
	return "unknown"
}

// ParseVerdict is the verdict named s.
func ParseVerdict(s string) (Verdict, bool) {
	for i, n := range verdictNames {
		if n == s {
			return Verdict(i), true
		}
	}
	return 0, false
}

// VerdictNames lists every verdict, best first.
func VerdictNames() []string { return append([]string(nil), verdictNames[:]...) }

// Thresholds are the numbers the rules compare with (README, "top").
type Thresholds struct {
	// ReceiverLimited, SendBufferLimited: share of the interval's busy
	// time (tcpi_busy_time) the peer's window (tcpi_rwnd_limited) or the
	// send buffer (tcpi_sndbuf_limited) held the sender back, and the
	// least share of the interval that time must also be.
	LimitedShare     float64
	LimitedMinOfWall float64
	// ApplicationLimited: data went out in the interval, yet the
	// connection was busy (had data in flight) for less than this share.
	AppBusyShare float64
	// Lossy: retransmitted segments of all segments sent in the interval.
	LossyShare float64
	// RTTInflated: srtt at least this many times min_rtt and at least
	// RTTInflatedMin above it.
	RTTInflatedFactor float64
	RTTInflatedMin    time.Duration
	// Stalled: data outstanding, nothing acknowledged in the interval, and
	// no ACK for this many RTOs (or as many RTO backoffs).
	StalledRTOs     uint32
	StalledBackoffs uint32
}

// DefaultThresholds are the README's numbers.
var DefaultThresholds = Thresholds{
	LimitedShare:      0.5,
	LimitedMinOfWall:  0.1,
	AppBusyShare:      0.5,
	LossyShare:        0.02,
	RTTInflatedFactor: 4,
	RTTInflatedMin:    20 * time.Millisecond,
	StalledRTOs:       3,
	StalledBackoffs:   2,
}

// caLoss is TCP_CA_Loss: the sender timed out and is retransmitting.
const caLoss = 4

// Interval is what the rules look at: one socket's sample now and its
// TCP_INFO at the previous refresh.
type Interval struct {
	Sample  Sample
	Prev    *TCPInfo // nil on the socket's first sample
	Elapsed time.Duration
	// ListenOverflows grown in the socket's namespace during the interval.
	NetNSOverflows uint64
	// ResetSeen: the socket-path events saw a reset on this connection.
	ResetSeen bool
}

// Judge applies every rule to one interval.
func Judge(in Interval, th Thresholds) (Verdict, []string) {
	var v Verdict
	var reasons []string
	hold := func(r Verdict, format string, args ...any) {
		if r > v {
			v = r
		}
		reasons = append(reasons, r.String()+": "+fmt.Sprintf(format, args...))
	}
	s, cur, prev := &in.Sample, in.Sample.Info, in.Prev

	if in.ResetSeen {
		hold(Reset, "a reset was sent or received")
	}
	if s.State == StateListen {
		// sk_acceptq_is_full: the queue is full once it holds more than
		// the backlog; the kernel then drops the handshake's last ACK.
		if s.WQueue > 0 && s.RQueue > s.WQueue {
			hold(BacklogFull, "accept queue %d > backlog %d", s.RQueue, s.WQueue)
		} else if in.NetNSOverflows > 0 && s.RQueue >= s.WQueue {
			hold(BacklogFull, "accept queue %d of backlog %d; %d listen overflows in its namespace", s.RQueue, s.WQueue, in.NetNSOverflows)
		}
		return v, reasons
	}
	if cur == nil {
		return v, reasons // TIME_WAIT and request sockets carry no TCP_INFO
	}
	if (s.State == StateSynSent || s.State == StateSynRecv) && (cur.Retransmits > 0 || cur.TotalRetrans > 0) {
		hold(HandshakeRetrying, "SYN retransmitted %d times", max(uint32(cur.Retransmits), cur.TotalRetrans))
	}
	waiting := cur.NotsentBytes > 0 || s.WQueue > 0
	// A window at 0 for a moment is the peer's window flapping shut and
	// open (receiver-limited); zero-window is when it stays shut: the
	// sender probes it, or nothing was acknowledged all interval.
	if (s.State == StateEstablished || s.State == StateCloseWait) && cur.SndWnd == 0 && waiting &&
		(cur.Probes > 0 || (prev != nil && cur.BytesAcked == prev.BytesAcked)) {
		hold(ZeroWindow, "peer's window is 0 with %d bytes waiting (%d zero-window probes)", s.WQueue, cur.Probes)
	}
	// A live peer answers each zero-window probe (the kernel then resets
	// tcpi_probes); probes that go unanswered mean it is gone.
	if cur.SndWnd == 0 && waiting && uint32(cur.Probes) >= th.StalledBackoffs {
		hold(Stalled, "%d zero-window probes unanswered, no ACK for %d ms", cur.Probes, cur.LastAckRecvMS)
	}
	if cur.Unacked > 0 && (prev == nil || cur.BytesAcked == prev.BytesAcked) {
		rto := max(cur.RTO/1000, 1) // ms
		// tcpi_rto is the backed-off RTO: after n backoffs the silence
		// already spans 2^n - 1 initial RTOs.
		if cur.LastAckRecvMS >= th.StalledRTOs*rto || uint32(cur.Backoff) >= th.StalledBackoffs {
			hold(Stalled, "%d segments outstanding, no ACK for %d ms (RTO %d ms, %d backoffs)", cur.Unacked, cur.LastAckRecvMS, rto, cur.Backoff)
		}
	}
	if cur.MinRTT > 0 && float64(cur.RTT) >= th.RTTInflatedFactor*float64(cur.MinRTT) &&
		time.Duration(cur.RTT-cur.MinRTT)*time.Microsecond >= th.RTTInflatedMin {
		hold(RTTInflated, "srtt %.1f ms is %.0fx min_rtt %.1f ms", float64(cur.RTT)/1e3, float64(cur.RTT)/float64(cur.MinRTT), float64(cur.MinRTT)/1e3)
	}
	if prev == nil || in.Elapsed <= 0 {
		return v, reasons
	}
	// Counters went back: a different socket with the same ends.
	if cur.SegsOut < prev.SegsOut || cur.BusyTime < prev.BusyTime || cur.TotalRetrans < prev.TotalRetrans {
		return v, reasons
	}
	wall := float64(in.Elapsed.Microseconds())
	busy := float64(cur.BusyTime - prev.BusyTime)
	rwnd := float64(cur.RwndLimited - prev.RwndLimited)
	sndbuf := float64(cur.SndbufLimited - prev.SndbufLimited)
	segs := cur.SegsOut - prev.SegsOut
	retrans := cur.TotalRetrans - prev.TotalRetrans
	dataOut := cur.DataSegsOut - prev.DataSegsOut
	if retrans > 0 && segs > 0 && float64(retrans) >= th.LossyShare*float64(segs) {
		hold(Lossy, "%d of %d segments retransmitted (%.1f%%), %d lost", retrans, segs, 100*float64(retrans)/float64(segs), cur.Lost)
	} else if cur.CAState == caLoss && cur.Retransmits > 0 {
		// Between two timeouts nothing is sent, yet the loss goes on.
		hold(Lossy, "in loss recovery after %d timeouts, %d lost", cur.Retransmits, cur.Lost)
	}
	// The window or the buffer only limits a sender that makes progress;
	// one that makes none is stalled or lossy, whatever the chronographs say.
	progress := cur.BytesAcked > prev.BytesAcked
	if progress && busy > 0 && rwnd >= th.LimitedShare*busy && rwnd >= th.LimitedMinOfWall*wall {
		hold(ReceiverLimited, "peer's window limited it %.0f%% of busy time (%.0f ms)", 100*rwnd/busy, rwnd/1e3)
	}
	if progress && busy > 0 && sndbuf >= th.LimitedShare*busy && sndbuf >= th.LimitedMinOfWall*wall {
		hold(SendBufferLimited, "send buffer limited it %.0f%% of busy time (%.0f ms)", 100*sndbuf/busy, sndbuf/1e3)
	}
	if dataOut > 0 && busy < th.AppBusyShare*wall && v == OK {
		hold(ApplicationLimited, "sent %d segments but had data in flight only %.0f%% of the interval", dataOut, 100*busy/wall)
	}
	return v, reasons
}
