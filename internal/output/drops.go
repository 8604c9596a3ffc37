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
