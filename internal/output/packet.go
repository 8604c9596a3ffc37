package output

// Records of the packet-path commands. Their JSON names are a contract that
// scripts and tests rely on (see README).

// FlagCounts is the "flags" object of a flags record.
type FlagCounts struct {
	FIN uint64 `json:"fin"`
	SYN uint64 `json:"syn"`
	RST uint64 `json:"rst"`
	PSH uint64 `json:"psh"`
	ACK uint64 `json:"ack"`
	URG uint64 `json:"urg"`
	ECE uint64 `json:"ece"`
	CWR uint64 `json:"cwr"`
}

// Anomalies counts suspicious flag combinations and malformed headers.
type Anomalies struct {
	SynFin    uint64 `json:"syn_fin"`
	SynRst    uint64 `json:"syn_rst"`
	Null      uint64 `json:"null"`
	Xmas      uint64 `json:"xmas"`
	Malformed uint64 `json:"malformed"`
}

// FlagsRecord is one interface's counts for an interval or since start.
type FlagsRecord struct {
	Type string `json:"type"` // "interval" or "summary"
	Time string `json:"time"`
	// The interval's length, or for the summary the run's.
	DurationSeconds float64    `json:"duration_seconds"`
	Interface       string     `json:"interface"`
	Direction       string     `json:"direction"` // "in" (received) or "out" (sent)
	Hook            string     `json:"hook"`
	Packets         uint64     `json:"packets"`
	TCPPackets      uint64     `json:"tcp_packets"`
	Flags           FlagCounts `json:"flags"`
	Anomalies       Anomalies  `json:"anomalies"`
	Dropped         uint64     `json:"dropped"`
}

// SYNRecord is one 4-tuple's connection attempts in an interval.
type SYNRecord struct {
	Type      string `json:"type"` // "syn"
	Time      string `json:"time"`
	Interface string `json:"interface"`
	Src       string `json:"src"`
	Sport     uint16 `json:"sport"`
	Dst       string `json:"dst"`
	Dport     uint16 `json:"dport"`
	SYN       uint64 `json:"syn"` // SYNs of the tuple in the interval; named as in syn_interval
}

// SYNSourceRecord is one source address's connection attempts in an interval.
type SYNSourceRecord struct {
	Type      string `json:"type"` // "syn_source"
	Time      string `json:"time"`
	Interface string `json:"interface"`
	Src       string `json:"src"`
	SYN       uint64 `json:"syn"` // SYNs since the source got its entry, exact
	// EarlierEstimate is the sketch's upper bound on the source's SYNs
	// before it got its entry (0 when it got one at its first SYN).
	EarlierEstimate uint64 `json:"earlier_estimate"`
}

// SYNIntervalRecord is one interface's SYN totals for an interval.
type SYNIntervalRecord struct {
	Type      string `json:"type"` // "syn_interval"
	Time      string `json:"time"`
	Interface string `json:"interface"`
	Direction string `json:"direction"` // "in" (received) or "out" (sent: only syn and syn_ack count)
	SYN       uint64 `json:"syn"`
	SYNAck    uint64 `json:"syn_ack"`
	Dropped   uint64 `json:"dropped"`
	Untracked uint64 `json:"untracked"`
	// UntrackedSources: SYNs not counted on any source entry.
	UntrackedSources uint64 `json:"untracked_sources"`
	// UntrackedSignatures (--by signature): SYNs whose signature found the
	// interval's signature table full.
	UntrackedSignatures *uint64 `json:"untracked_signatures,omitempty"`
}

// SYNSignatureRecord is one TCP-options signature's connection attempts in
// an interval (--by signature).
type SYNSignatureRecord struct {
	Type      string  `json:"type"` // "syn_signature"
	Time      string  `json:"time"`
	Interface string  `json:"interface"`
	Signature string  `json:"signature"` // LAYOUT:MSS:WSCALE, as --drop-syn-signature takes it
	SYN       uint64  `json:"syn"`
	Share     float64 `json:"share"` // of the interface's SYNs in the interval, 0 to 1
}

// SYNSignatureCount is one signature's SYNs over the run, all interfaces.
type SYNSignatureCount struct {
	Signature string `json:"signature"`
	SYN       uint64 `json:"syn"`
}

// SYNSignatureTotals is the summary's --by signature part.
type SYNSignatureTotals struct {
	Signatures []SYNSignatureCount `json:"signatures"` // busiest first
	Untracked  uint64              `json:"untracked"`  // SYNs whose signature found the table full
}

// SYNOut is the summary's totals of SYNs sent (--direction out or both).
type SYNOut struct {
	SYN    uint64 `json:"syn"`
	SYNAck uint64 `json:"syn_ack"`
}

// SYNSummary holds totals since start, over all interfaces: of SYNs
// received, and in Out of SYNs sent when egress is watched.
type SYNSummary struct {
	Type             string  `json:"type"` // "summary"
	DurationSeconds  float64 `json:"duration_seconds"`
	SYN              uint64  `json:"syn"`
	SYNAck           uint64  `json:"syn_ack"`
	Dropped          uint64  `json:"dropped"`
	Tuples           int     `json:"tuples"`     // tuple entries, summed over intervals
	Sources          int     `json:"sources"`    // source entries, summed over intervals
	Attributed       uint64  `json:"attributed"` // SYNs counted on tuple entries: syn - untracked
	Untracked        uint64  `json:"untracked"`
	UntrackedSources uint64  `json:"untracked_sources"`
	Out              *SYNOut `json:"out,omitempty"`
	// BySignature (--by signature): SYNs received per signature; with
	// Untracked they add up to SYN.
	BySignature *SYNSignatureTotals `json:"by_signature,omitempty"`
}
