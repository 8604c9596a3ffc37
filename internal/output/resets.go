package output

// Records of `tcplens resets`; their JSON names are a contract (README).

// ResetRecord is one reset sent or received.
type ResetRecord struct {
	Type string `json:"type"` // "reset"
	Time string `json:"time"`
	Conn
	Direction string `json:"direction"` // "sent" or "received"
	State     string `json:"state"`     // "UNKNOWN" when the kernel had no socket
	// Reason is the kernel's enum sk_rst_reason name without its
	// SK_RST_REASON_ prefix, read from BTF; sent resets only.
	Reason string `json:"reason,omitempty"`
	PID    uint32 `json:"pid"`
}

// ResetSummary holds totals since start.
type ResetSummary struct {
	Type            string            `json:"type"` // "summary"
	DurationSeconds float64           `json:"duration_seconds"`
	Sent            uint64            `json:"sent"`
	Received        uint64            `json:"received"`
	Reasons         map[string]uint64 `json:"reasons"` // sent resets by reason
	Loss
}

// AppendJSON writes what encoding/json would (jsonappend.go), without
// reflection or allocation.

func (r *ResetRecord) AppendJSON(b []byte) []byte {
	b = appendHead(b, r.Type, r.Time)
	b = r.Conn.appendFields(b)
	b = append(b, `,"direction":`...)
	b = appendJSONString(b, r.Direction)
	b = append(b, `,"state":`...)
	b = appendJSONString(b, r.State)
	if r.Reason != "" {
		b = append(b, `,"reason":`...)
		b = appendJSONString(b, r.Reason)
	}
	b = append(b, `,"pid":`...)
	b = appendUint(b, uint64(r.PID))
	return append(b, '}')
}

func (s *ResetSummary) AppendJSON(b []byte) []byte {
	b = appendSummaryHead(b, s.Type, s.DurationSeconds)
	b = append(b, `,"sent":`...)
	b = appendUint(b, s.Sent)
	b = append(b, `,"received":`...)
	b = appendUint(b, s.Received)
	b = append(b, `,"reasons":`...)
	b = appendCounts(b, s.Reasons)
	b = append(b, ',')
	b = s.Loss.appendFields(b)
	return append(b, '}')
}
