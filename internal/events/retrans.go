package events

import (
	"bytes"
	"fmt"
	"net/netip"
	"time"

	"github.com/tcplens/tcplens/internal/bpfobj"
)

// Retransmission kinds, as bpf/retrans.c sets them.
const (
	RetransData   = 0
	RetransSynAck = 1
)

// Retransmit is one decoded record of bpf/retrans.c.
type Retransmit struct {
	Time          time.Time
	Local, Remote netip.AddrPort
	State         uint8
	Kind          uint8 // RetransData or RetransSynAck
	// Segments is what the kernel added to the socket's total_retrans
	// (tcpi_total_retrans) for this retransmission: measured in the
	// kernel as the counter's growth (bpf/retrans.c), so it is exact also
	// for failed attempts, counted or not depending on where they failed.
	Segments     uint16
	SKBSegments  uint16 // tcp_skb_pcount of the retransmitted skb
	TotalRetrans uint32 // the socket's total_retrans after it; 0 for SYN-ACKs
	Err          int32  // 0: sent; else what the send failed with (-errno or NET_XMIT_*)
	PID          uint32
	Comm         [16]byte // the on-CPU task's name, not necessarily the socket's owner
}

// CommString is the on-CPU task's name.
func (r *Retransmit) CommString() string {
	n := bytes.IndexByte(r.Comm[:], 0)
	if n < 0 {
		n = len(r.Comm)
	}
	return string(r.Comm[:n])
}

// KindName is "data" or "synack".
func (r *Retransmit) KindName() string {
	if r.Kind == RetransSynAck {
		return "synack"
	}
	return "data"
}

// DecodeRetransmit fills r from a ring buffer record without allocating.
func DecodeRetransmit(raw []byte, clock Clock, r *Retransmit) error {
	e, ok := Cast[bpfobj.RetransRetransEvent](raw)
	if !ok {
		return fmt.Errorf("retransmit record of %d bytes is too short", len(raw))
	}
	r.Time = clock.Wall(e.TsNs)
	r.Local, r.Remote = Ends(e.Addrs.Family, &e.Addrs.Saddr, &e.Addrs.Daddr, e.Addrs.Sport, e.Addrs.Dport)
	r.State = e.State
	r.Kind = e.Kind
	r.Segments = e.Segs
	r.SKBSegments = e.SkbSegs
	r.TotalRetrans = e.TotalRetrans
	r.Err = e.Err
	r.PID = e.Pid
	for i, c := range e.Comm {
		r.Comm[i] = byte(c)
	}
	return nil
}
