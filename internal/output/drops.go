package output

// Records of `tcplens drops`; their JSON names are a contract (README).

// DropRecord is one TCP packet the kernel dropped.
type DropRecord struct {
	Type string `json:"type"` // "drop"
	Time string `json:"time"`
	Conn
	Direction string `json:"direction"` // "in": arrived here; "out": sent from here
	// Reason is the kernel's enum skb_drop_reason name without its
	// SKB_DROP_REASON_ prefix, read from BTF ("NO_SOCKET", "NOT_SPECIFIED").
	// Absent on kernels that give no reason (before 5.17).
	Reason string `json:"reason,omitempty"`
	Flags  string `json:"flags"` // TCP flags as tcpdump prints them
	// Location is the kernel code that dropped it, "tcp_v4_rcv+0x91"
	// (from /proc/kallsyms), or its hex address when no symbol holds it;
	// LocationAddr is always the hex address.
	Location     string `json:"location"`
	LocationAddr string `json:"location_addr"`
	// Stack (--stack) is the kernel stack, innermost frame first, each
	// symbolized as Location is.
	Stack []string `json:"stack,omitempty"`
	PID   uint32   `json:"pid"`
}

// DropSummary holds totals since start.
type DropSummary struct {
	Type            string            `json:"type"` // "summary"
	DurationSeconds float64           `json:"duration_seconds"`
	Drops           uint64            `json:"drops"`
	Reasons         map[string]uint64 `json:"reasons"`
	Loss
	// StacksLost (with --stack) counts drops whose stack was not recorded.
	StacksLost *uint64 `json:"stacks_lost,omitempty"`
	// ListenOverflows and ListenDrops are the growth of the namespace's
	// TcpExt counters of the same names while tcplens ran: connections
	// that listeners turned away without a kfree_skb drop (README).
	ListenOverflows uint64 `json:"listen_overflows"`
	ListenDrops     uint64 `json:"listen_drops"`
}

// AppendJSON writes what encoding/json would (jsonappend.go), without
// reflection or allocation.

func (r *DropRecord) AppendJSON(b []byte) []byte {
	b = appendHead(b, r.Type, r.Time)
	b = r.Conn.appendFields(b)
	b = append(b, `,"direction":`...)
	b = appendJSONString(b, r.Direction)
	if r.Reason != "" {
		b = append(b, `,"reason":`...)
		b = appendJSONString(b, r.Reason)
	}
	b = append(b, `,"flags":`...)
	b = appendJSONString(b, r.Flags)
	b = append(b, `,"location":`...)
	b = appendJSONString(b, r.Location)
	b = append(b, `,"location_addr":`...)
	b = appendJSONString(b, r.LocationAddr)
	if len(r.Stack) > 0 {
		b = append(b, `,"stack":[`...)
		for i, f := range r.Stack {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, f)
		}
		b = append(b, ']')
	}
	b = append(b, `,"pid":`...)
	b = appendUint(b, uint64(r.PID))
	return append(b, '}')
}

func (s *DropSummary) AppendJSON(b []byte) []byte {
	b = appendSummaryHead(b, s.Type, s.DurationSeconds)
	b = append(b, `,"drops":`...)
	b = appendUint(b, s.Drops)
	b = append(b, `,"reasons":`...)
	b = appendCounts(b, s.Reasons)
	b = append(b, ',')
	b = s.Loss.appendFields(b)
	if s.StacksLost != nil {
		b = append(b, `,"stacks_lost":`...)
		b = appendUint(b, *s.StacksLost)
	}
	b = append(b, `,"listen_overflows":`...)
	b = appendUint(b, s.ListenOverflows)
	b = append(b, `,"listen_drops":`...)
	b = appendUint(b, s.ListenDrops)
	return append(b, '}')
}
