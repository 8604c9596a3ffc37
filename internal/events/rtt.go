package events

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/tcplens/tcplens/internal/bpfobj"
)

// Why bpf/rtt.c emitted a sample (bits of RTTSample.Reason).
const (
	RTTPeriodic = 1 // the sample period passed (or first sight of the connection)
	RTTCwnd     = 2 // snd_cwnd changed
	RTTSsthresh = 4 // snd_ssthresh changed
	RTTLoss     = 8 // a loss event: the connection entered fast recovery or RTO recovery
)

// RTTSample is one decoded record of bpf/rtt.c: a connection's congestion
// and RTT state as tcp_probe saw it, in tcp_info's units.
type RTTSample struct {
	Time          time.Time
	Local, Remote netip.AddrPort
	State         uint8
	Reason        uint8

	Cwnd, Ssthresh   uint32 // segments
	SrttUS, RttvarUS uint32 // tcpi_rtt, tcpi_rttvar
	SndWnd, RcvWnd   uint32 // bytes
	PacketsOut       uint32
	RetransOut       uint32
	TotalRetrans     uint32
	BytesAcked       uint64
	BytesReceived    uint64
	WmemQueued       int32 // sk_wmem_queued
	RmemAlloc        int32 // sk_rmem_alloc
	SndBuf, RcvBuf   int32
}

// DecodeRTTSample fills s from a ring buffer record without allocating.
func DecodeRTTSample(raw []byte, clock Clock, s *RTTSample) error {
	e, ok := Cast[bpfobj.RttRttEvent](raw)
	if !ok {
		return fmt.Errorf("rtt record of %d bytes is too short", len(raw))
	}
	s.Time = clock.Wall(e.TsNs)
	s.Local, s.Remote = Ends(e.Addrs.Family, &e.Addrs.Saddr, &e.Addrs.Daddr, e.Addrs.Sport, e.Addrs.Dport)
	s.State, s.Reason = e.State, e.Reason
	s.Cwnd, s.Ssthresh = e.SndCwnd, e.SndSsthresh
	s.SrttUS, s.RttvarUS = e.SrttUs, e.RttvarUs
	s.SndWnd, s.RcvWnd = e.SndWnd, e.RcvWnd
	s.PacketsOut, s.RetransOut, s.TotalRetrans = e.PacketsOut, e.RetransOut, e.TotalRetrans
	s.BytesAcked, s.BytesReceived = e.BytesAcked, e.BytesReceived
	s.WmemQueued, s.RmemAlloc, s.SndBuf, s.RcvBuf = e.WmemQueued, e.RmemAlloc, e.Sndbuf, e.Rcvbuf
	return nil
}
