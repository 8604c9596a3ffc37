package output

// Records of `tcplens states`; their JSON names are a contract (README).

// StateRecord is one TCP state transition.
type StateRecord struct {
	Type string `json:"type"` // "state"
	Time string `json:"time"`
	Conn
	PID      *uint32 `json:"pid"`  // null: the kernel did not say
	Comm     *string `json:"comm"` // null: the kernel did not say
	OldState string  `json:"old_state"`
	NewState string  `json:"new_state"`
	// Time spent in old_state; null when tcplens did not see it begin.
	DurationUS *float64 `json:"duration_us"`
	// SYN_SENT/SYN_RECV -> ESTABLISHED only.
	HandshakeUS *float64 `json:"handshake_us,omitempty"`
}

// LifetimeRecord is one connection that reached CLOSE, like BCC tcplife.
type LifetimeRecord struct {
	Type string `json:"type"` // "lifetime"
	Time string `json:"time"`
	Conn
	PID  *uint32 `json:"pid"`
	Comm *string `json:"comm"`
	// From the socket's birth when from_start, else from when tcplens
	// first saw it.
	DurationUS    float64 `json:"duration_us"`
	FromStart     bool    `json:"from_start"`
	LastState     string  `json:"last_state"` // the state it closed from
	BytesAcked    uint64  `json:"bytes_acked"`
	BytesReceived uint64  `json:"bytes_received"`
	TotalRetrans  uint32  `json:"total_retrans"`
}

// StatesSummary holds totals since start.
type StatesSummary struct {
	Type            string  `json:"type"` // "summary"
	DurationSeconds float64 `json:"duration_seconds"`
	Transitions     uint64  `json:"transitions"`
	Handshakes      uint64  `json:"handshakes"`
	Lifetimes       uint64  `json:"lifetimes"`
	Loss
}

// AppendJSON writes what encoding/json would (jsonappend.go), without
// reflection or allocation.

func (r *StateRecord) AppendJSON(b []byte) []byte {
	b = appendHead(b, r.Type, r.Time)
	b = r.Conn.appendFields(b)
	b = append(b, `,"pid":`...)
	b = appendOptUint32(b, r.PID)
	b = append(b, `,"comm":`...)
	b = appendOptString(b, r.Comm)
	b = append(b, `,"old_state":`...)
	b = appendJSONString(b, r.OldState)
	b = append(b, `,"new_state":`...)
	b = appendJSONString(b, r.NewState)
	b = append(b, `,"duration_us":`...)
	b = appendOptFloat(b, r.DurationUS)
	if r.HandshakeUS != nil {
		b = append(b, `,"handshake_us":`...)
		b = appendJSONFloat(b, *r.HandshakeUS)
	}
	return append(b, '}')
}

func (r *LifetimeRecord) AppendJSON(b []byte) []byte {
	b = appendHead(b, r.Type, r.Time)
	b = r.Conn.appendFields(b)
	b = append(b, `,"pid":`...)
	b = appendOptUint32(b, r.PID)
	b = append(b, `,"comm":`...)
	b = appendOptString(b, r.Comm)
	b = append(b, `,"duration_us":`...)
	b = appendJSONFloat(b, r.DurationUS)
	b = append(b, `,"from_start":`...)
	b = appendBool(b, r.FromStart)
	b = append(b, `,"last_state":`...)
	b = appendJSONString(b, r.LastState)
	b = append(b, `,"bytes_acked":`...)
	b = appendUint(b, r.BytesAcked)
	b = append(b, `,"bytes_received":`...)
	b = appendUint(b, r.BytesReceived)
	b = append(b, `,"total_retrans":`...)
	b = appendUint(b, uint64(r.TotalRetrans))
	return append(b, '}')
}

func (s *StatesSummary) AppendJSON(b []byte) []byte {
	b = appendSummaryHead(b, s.Type, s.DurationSeconds)
	b = append(b, `,"transitions":`...)
	b = appendUint(b, s.Transitions)
	b = append(b, `,"handshakes":`...)
	b = appendUint(b, s.Handshakes)
	b = append(b, `,"lifetimes":`...)
	b = appendUint(b, s.Lifetimes)
	b = append(b, ',')
	b = s.Loss.appendFields(b)
	return append(b, '}')
}
