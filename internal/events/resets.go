package events

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/tcplens/tcplens/internal/bpfobj"
)

// Reset directions, as bpf/resets.c sets them.
const (
	ResetSent     = 0
	ResetReceived = 1
)

// EnumNamer names the values of a kernel enum (probe.EnumNames).
type EnumNamer interface {
	Name(v uint64) string
}

// Reset is one decoded record of bpf/resets.c.
type Reset struct {
	Time          time.Time
	Local, Remote netip.AddrPort
	State         uint8 // 0 when the kernel had no socket (UNKNOWN)
	Direction     uint8 // ResetSent or ResetReceived
	HasSocket     bool
	Reason        uint32 // enum sk_rst_reason; sent resets only
	ReasonKnown   bool   // the kernel gave a reason (sent resets, 6.10+)
	ReasonName    string // "" for received resets, or a value BTF does not name
	PID           uint32
}

// DirectionName is "sent" or "received".
func (r *Reset) DirectionName() string {
	if r.Direction == ResetReceived {
		return "received"
	}
	return "sent"
}

// DecodeReset fills r from a ring buffer record without allocating.
func DecodeReset(raw []byte, clock Clock, reasons EnumNamer, r *Reset) error {
	e, ok := Cast[bpfobj.ResetsResetEvent](raw)
	if !ok {
		return fmt.Errorf("reset record of %d bytes is too short", len(raw))
	}
	r.Time = clock.Wall(e.TsNs)
	r.Local, r.Remote = Ends(e.Addrs.Family, &e.Addrs.Saddr, &e.Addrs.Daddr, e.Addrs.Sport, e.Addrs.Dport)
	r.State = e.State
	r.Direction = e.Direction
	r.HasSocket = e.HasSocket != 0
	r.Reason = e.Reason
	r.ReasonKnown = e.ReasonKnown != 0
	r.ReasonName = ""
	if r.Direction == ResetSent && r.ReasonKnown && reasons != nil {
		r.ReasonName = reasons.Name(uint64(e.Reason))
	}
	r.PID = e.Pid
	return nil
}
