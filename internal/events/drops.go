package events

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/tcplens/tcplens/internal/bpfobj"
)

// Drop directions, as bpf/drops.c sets them.
const (
	DropIn  = 0 // the packet arrived here
	DropOut = 1 // this host sent it
)

// Drop is one decoded record of bpf/drops.c: a TCP packet the kernel
// dropped.
type Drop struct {
	Time          time.Time
	Local, Remote netip.AddrPort // Local is this host's end, whichever way the packet went
	Direction     uint8          // DropIn or DropOut
	TCPFlags      uint8
	Reason        uint32 // enum skb_drop_reason
	HasReason     bool   // false on kernels that give no reason (before 5.17)
	ReasonName    string // "" when BTF does not name the value
	Location      uint64 // kernel address of the code that dropped it
	StackID       int32  // in the stacks map with --stack; else or when it failed -1
	PID           uint32
}

// DirectionName is "in" or "out".
func (d *Drop) DirectionName() string {
	if d.Direction == DropOut {
		return "out"
	}
	return "in"
}

// DecodeDrop fills d from a ring buffer record without allocating.
func DecodeDrop(raw []byte, clock Clock, reasons EnumNamer, d *Drop) error {
	e, ok := Cast[bpfobj.DropsDropEvent](raw)
	if !ok {
		return fmt.Errorf("drop record of %d bytes is too short", len(raw))
	}
	d.Time = clock.Wall(e.TsNs)
	d.Local, d.Remote = Ends(e.Addrs.Family, &e.Addrs.Saddr, &e.Addrs.Daddr, e.Addrs.Sport, e.Addrs.Dport)
	d.Direction = e.Direction
	d.TCPFlags = e.TcpFlags
	d.Reason = e.Reason
	d.HasReason = e.HasReason != 0
	d.ReasonName = ""
	if reasons != nil && d.HasReason {
		d.ReasonName = reasons.Name(uint64(e.Reason))
	}
	d.Location = e.Location
	d.StackID = e.StackId
	d.PID = e.Pid
	return nil
}

// tcpFlagLetters are TCP's flags from the lowest bit up, as tcpdump
// prints them (E for ECE, W for CWR).
const tcpFlagLetters = "FSRPAUEW"

// TCPFlagString writes flags as letters into buf (at least 8 bytes) and
// returns the used part: "S", "R.", ... with "." for ACK, as tcpdump.
func TCPFlagString(flags uint8, buf []byte) []byte {
	out := buf[:0]
	for i := 0; i < 8; i++ {
		if flags&(1<<i) == 0 {
			continue
		}
		if i == 4 {
			out = append(out, '.')
			continue
		}
		out = append(out, tcpFlagLetters[i])
	}
	return out
}
