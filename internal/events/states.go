package events

import (
	"bytes"
	"fmt"
	"net/netip"
	"time"

	"github.com/tcplens/tcplens/internal/bpfobj"
)

// Record kinds and flags of bpf/states.c.
const (
	StateKindTransition = 0
	StateKindLifetime   = 1

	stateDurationKnown = 1
	stateStartKnown    = 2
	stateHandshake     = 4
)

// StateChange is one decoded record of bpf/states.c: a transition, or the
// lifetime of a connection that reached CLOSE.
type StateChange struct {
	Time          time.Time
	Local, Remote netip.AddrPort
	Kind          uint8 // StateKindTransition or StateKindLifetime
	OldState      uint8
	NewState      uint8

	// Transition: time spent in OldState, when tcplens saw it begin.
	Duration      time.Duration
	DurationKnown bool
	// Transition SYN_SENT/SYN_RECV -> ESTABLISHED: since SYN_SENT
	// (connect) or SYN_RECV (the listener's child was made).
	Handshake      time.Duration
	HandshakeKnown bool

	// Lifetime: since birth when FromStart, else since tcplens first saw
	// the socket.
	Lifetime      time.Duration
	FromStart     bool
	BytesAcked    uint64 // sent and acknowledged (tcpi_bytes_acked)
	BytesReceived uint64 // tcpi_bytes_received
	TotalRetrans  uint32 // tcpi_total_retrans

	PID  uint32 // 0: not known
	Comm [16]byte
}

// CommString is the command name, or "" when not known.
func (s *StateChange) CommString() string {
	if s.PID == 0 {
		return ""
	}
	n := bytes.IndexByte(s.Comm[:], 0)
	if n < 0 {
		n = len(s.Comm)
	}
	return string(s.Comm[:n])
}

// DecodeStateChange fills s from a ring buffer record without allocating.
func DecodeStateChange(raw []byte, clock Clock, s *StateChange) error {
	e, ok := Cast[bpfobj.StatesStateEvent](raw)
	if !ok {
		return fmt.Errorf("state record of %d bytes is too short", len(raw))
	}
	s.Time = clock.Wall(e.TsNs)
	s.Local, s.Remote = Ends(e.Addrs.Family, &e.Addrs.Saddr, &e.Addrs.Daddr, e.Addrs.Sport, e.Addrs.Dport)
	s.Kind = e.Kind
	s.OldState, s.NewState = e.OldState, e.NewState
	s.Duration = time.Duration(e.DurationNs)
	s.DurationKnown = e.Flags&stateDurationKnown != 0
	s.Handshake = time.Duration(e.HandshakeNs)
	s.HandshakeKnown = e.Flags&stateHandshake != 0
	s.Lifetime = time.Duration(e.LifetimeNs)
	s.FromStart = e.Flags&stateStartKnown != 0
	s.BytesAcked, s.BytesReceived, s.TotalRetrans = e.BytesAcked, e.BytesReceived, e.TotalRetrans
	s.PID = e.Pid
	for i, c := range e.Comm {
		s.Comm[i] = byte(c)
	}
	return nil
}
