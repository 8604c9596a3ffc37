package output

// Records of `tcplens rtt`; their JSON names are a contract (README).
// Field names follow ss -ti and struct tcp_info.

// RTTRecord is one sample of a connection's congestion and RTT state.
type RTTRecord struct {
	Type string `json:"type"` // "rtt"
	Time string `json:"time"`
	Conn
	State         string `json:"state"`
	Reason        string `json:"reason"`   // "periodic", "cwnd", "ssthresh", "loss", joined with "+"
	Cwnd          uint32 `json:"cwnd"`     // segments
	Ssthresh      uint32 `json:"ssthresh"` // segments; 2147483647 until the first loss
	SrttUS        uint32 `json:"srtt_us"`
	RttvarUS      uint32 `json:"rttvar_us"`
	SndWnd        uint32 `json:"snd_wnd"`
	RcvWnd        uint32 `json:"rcv_wnd"`
	PacketsOut    uint32 `json:"packets_out"`
	RetransOut    uint32 `json:"retrans_out"`
	TotalRetrans  uint32 `json:"total_retrans"`
	BytesAcked    uint64 `json:"bytes_acked"`
	BytesReceived uint64 `json:"bytes_received"`
	WmemQueued    int32  `json:"wmem_queued"`
	RmemAlloc     int32  `json:"rmem_alloc"`
	SndBuf        int32  `json:"sndbuf"`
	RcvBuf        int32  `json:"rcvbuf"`
}

// RTTBucket is one bucket of a log2 histogram: count samples with
// lo_us <= srtt <= hi_us.
type RTTBucket struct {
	LoUS  uint64 `json:"lo_us"`
	HiUS  uint64 `json:"hi_us"`
	Count uint64 `json:"count"`
}

// RTTHistogramRecord is the srtt histogram of one key of --histogram-by:
// the 4-tuple fields the key does not keep are "" or 0.
type RTTHistogramRecord struct {
	Type string `json:"type"` // "rtt_histogram"
	Time string `json:"time"`
	By   string `json:"by"` // --histogram-by: "rport", "lport", "raddr", "laddr" or "conn"
	Conn
	Samples uint64      `json:"samples"`
	Buckets []RTTBucket `json:"buckets"` // non-empty span only
}

// RTTSummary holds totals since start.
type RTTSummary struct {
	Type            string  `json:"type"` // "summary"
	DurationSeconds float64 `json:"duration_seconds"`
	Samples         uint64  `json:"samples"` // records received, whatever made them
	// With --histogram only: the samples the histograms hold, the
	// periodic ones (a cwnd or ssthresh change is not an RTT sample of
	// its own: counting them would weigh busy connections more).
	HistogramSamples *uint64 `json:"histogram_samples,omitempty"`
	Connections      uint64  `json:"connections"`
	Loss
}

// AppendJSON writes what encoding/json would (jsonappend.go), without
// reflection or allocation.

func (r *RTTRecord) AppendJSON(b []byte) []byte {
	b = appendHead(b, r.Type, r.Time)
	b = r.Conn.appendFields(b)
	b = append(b, `,"state":`...)
	b = appendJSONString(b, r.State)
	b = append(b, `,"reason":`...)
	b = appendJSONString(b, r.Reason)
	b = append(b, `,"cwnd":`...)
	b = appendUint(b, uint64(r.Cwnd))
	b = append(b, `,"ssthresh":`...)
	b = appendUint(b, uint64(r.Ssthresh))
	b = append(b, `,"srtt_us":`...)
	b = appendUint(b, uint64(r.SrttUS))
	b = append(b, `,"rttvar_us":`...)
	b = appendUint(b, uint64(r.RttvarUS))
	b = append(b, `,"snd_wnd":`...)
	b = appendUint(b, uint64(r.SndWnd))
	b = append(b, `,"rcv_wnd":`...)
	b = appendUint(b, uint64(r.RcvWnd))
	b = append(b, `,"packets_out":`...)
	b = appendUint(b, uint64(r.PacketsOut))
	b = append(b, `,"retrans_out":`...)
	b = appendUint(b, uint64(r.RetransOut))
	b = append(b, `,"total_retrans":`...)
	b = appendUint(b, uint64(r.TotalRetrans))
	b = append(b, `,"bytes_acked":`...)
	b = appendUint(b, r.BytesAcked)
	b = append(b, `,"bytes_received":`...)
	b = appendUint(b, r.BytesReceived)
	b = append(b, `,"wmem_queued":`...)
	b = appendInt(b, int64(r.WmemQueued))
	b = append(b, `,"rmem_alloc":`...)
	b = appendInt(b, int64(r.RmemAlloc))
	b = append(b, `,"sndbuf":`...)
	b = appendInt(b, int64(r.SndBuf))
	b = append(b, `,"rcvbuf":`...)
	b = appendInt(b, int64(r.RcvBuf))
	return append(b, '}')
}

func (r *RTTHistogramRecord) AppendJSON(b []byte) []byte {
	b = appendHead(b, r.Type, r.Time)
	b = append(b, `"by":`...)
	b = appendJSONString(b, r.By)
	b = append(b, ',')
	b = r.Conn.appendFields(b)
	b = append(b, `,"samples":`...)
	b = appendUint(b, r.Samples)
	b = append(b, `,"buckets":`...)
	if r.Buckets == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range r.Buckets {
			if i > 0 {
				b = append(b, ',')
			}
			k := &r.Buckets[i]
			b = append(b, `{"lo_us":`...)
			b = appendUint(b, k.LoUS)
			b = append(b, `,"hi_us":`...)
			b = appendUint(b, k.HiUS)
			b = append(b, `,"count":`...)
			b = appendUint(b, k.Count)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

func (s *RTTSummary) AppendJSON(b []byte) []byte {
	b = appendSummaryHead(b, s.Type, s.DurationSeconds)
	b = append(b, `,"samples":`...)
	b = appendUint(b, s.Samples)
	if s.HistogramSamples != nil {
		b = append(b, `,"histogram_samples":`...)
		b = appendUint(b, *s.HistogramSamples)
	}
	b = append(b, `,"connections":`...)
	b = appendUint(b, s.Connections)
	b = append(b, ',')
	b = s.Loss.appendFields(b)
	return append(b, '}')
}
