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
	Reason   string `json:"reason"`
	Flags    string `json:"flags"`    // TCP flags as tcpdump prints them
	Location string `json:"location"` // kernel address that dropped it, hex
	PID      uint32 `json:"pid"`
}

// DropSummary holds totals since start.
type DropSummary struct {
	Type            string            `json:"type"` // "summary"
	DurationSeconds float64           `json:"duration_seconds"`
	Drops           uint64            `json:"drops"`
	Reasons         map[string]uint64 `json:"reasons"`
	Lost            uint64            `json:"lost"`
}
