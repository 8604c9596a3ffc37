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
