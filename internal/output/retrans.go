package output

// Records of `tcplens retrans`; their JSON names are a contract (README).

// Conn is the 4-tuple every connection record carries; local is this
// host's end.
type Conn struct {
	LAddr string `json:"laddr"`
	LPort uint16 `json:"lport"`
	RAddr string `json:"raddr"`
	RPort uint16 `json:"rport"`
}

// RetransmitRecord is one retransmission.
type RetransmitRecord struct {
	Type string `json:"type"` // "retransmit"
	Time string `json:"time"`
	Conn
	PID          uint32 `json:"pid"`  // on-CPU process: 0 or a kernel thread for timer-driven retransmits
	Comm         string `json:"comm"` // on-CPU task's name (ksoftirqd/0 is not the socket's owner)
	State        string `json:"state"`
	Kind         string `json:"kind"`               // "data" or "synack"
	Segments     uint16 `json:"segments"`           // what the kernel added to the socket's total_retrans
	SKBSegments  uint16 `json:"skb_segments"`       // segments the retransmitted skb carried
	TotalRetrans uint32 `json:"total_retrans"`      // the socket's counter after this one (0 for SYN-ACKs)
	Err          int32  `json:"err"`                // 0, or what sending failed with (-errno, or NET_XMIT_* > 0)
	ErrName      string `json:"err_name,omitempty"` // err's name: "EBUSY", "NET_XMIT_DROP"; absent when err is 0
}

// RetransmitsRecord is one connection's retransmitted segments in an
// interval (--interval).
type RetransmitsRecord struct {
	Type string `json:"type"` // "retransmits"
	Time string `json:"time"`
	Conn
	Segments    uint64 `json:"segments"`    // retransmitted segments, as in the retransmit records
	Retransmits uint64 `json:"retransmits"` // retransmission events
	SynAcks     uint64 `json:"synacks"`     // of which SYN-ACKs
	Failed      uint64 `json:"failed"`      // attempts with err != 0; in count only as far as the kernel counted them
}

// RetransSummary holds totals since start.
type RetransSummary struct {
	Type            string  `json:"type"` // "summary"
	DurationSeconds float64 `json:"duration_seconds"`
	Retransmits     uint64  `json:"retransmits"` // events seen
	Segments        uint64  `json:"segments"`
	SynAcks         uint64  `json:"synacks"`
	Failed          uint64  `json:"failed"`
	Loss
}

// AppendJSON writes what encoding/json would (jsonappend.go), without
// reflection or allocation.

func (r *RetransmitRecord) AppendJSON(b []byte) []byte {
	b = appendHead(b, r.Type, r.Time)
	b = r.Conn.appendFields(b)
	b = append(b, `,"pid":`...)
	b = appendUint(b, uint64(r.PID))
	b = append(b, `,"comm":`...)
	b = appendJSONString(b, r.Comm)
	b = append(b, `,"state":`...)
	b = appendJSONString(b, r.State)
	b = append(b, `,"kind":`...)
	b = appendJSONString(b, r.Kind)
	b = append(b, `,"segments":`...)
	b = appendUint(b, uint64(r.Segments))
	b = append(b, `,"skb_segments":`...)
	b = appendUint(b, uint64(r.SKBSegments))
	b = append(b, `,"total_retrans":`...)
	b = appendUint(b, uint64(r.TotalRetrans))
	b = append(b, `,"err":`...)
	b = appendInt(b, int64(r.Err))
	if r.ErrName != "" {
		b = append(b, `,"err_name":`...)
		b = appendJSONString(b, r.ErrName)
	}
	return append(b, '}')
}

func (r *RetransmitsRecord) AppendJSON(b []byte) []byte {
	b = appendHead(b, r.Type, r.Time)
	b = r.Conn.appendFields(b)
	b = append(b, `,"segments":`...)
	b = appendUint(b, r.Segments)
	b = append(b, `,"retransmits":`...)
	b = appendUint(b, r.Retransmits)
	b = append(b, `,"synacks":`...)
	b = appendUint(b, r.SynAcks)
	b = append(b, `,"failed":`...)
	b = appendUint(b, r.Failed)
	return append(b, '}')
}

func (s *RetransSummary) AppendJSON(b []byte) []byte {
	b = appendSummaryHead(b, s.Type, s.DurationSeconds)
	b = append(b, `,"retransmits":`...)
	b = appendUint(b, s.Retransmits)
	b = append(b, `,"segments":`...)
	b = appendUint(b, s.Segments)
	b = append(b, `,"synacks":`...)
	b = appendUint(b, s.SynAcks)
	b = append(b, `,"failed":`...)
	b = appendUint(b, s.Failed)
	b = append(b, ',')
	b = s.Loss.appendFields(b)
	return append(b, '}')
}
