package output

// Records of `tcplens guard -o json`, one per line, each with "type":
// "interval" (matches per rule, top sources), "auto_block" and "release"
// (one per source and event), "reload", and "summary".

// GuardRuleCounts is how many packets each rule matched: dropped, or in a
// dry run would have dropped. Allow counts packets a rule would have
// dropped that the allow list passed.
type GuardRuleCounts struct {
	Allow            uint64 `json:"allow"`
	Block            uint64 `json:"block"`
	DropPort         uint64 `json:"drop_port"`
	DropSYNPort      uint64 `json:"drop_syn_port"`
	SYNRequireMSS    uint64 `json:"syn_require_mss"`
	DropSYNSignature uint64 `json:"drop_syn_signature"`
	Scan             uint64 `json:"scan"`
	SYNRate          uint64 `json:"syn_rate"`
	SYNRateGlobal    uint64 `json:"syn_rate_global"`
}

// GuardSource is a source and its SYNs in the interval (or the run).
type GuardSource struct {
	Addr string `json:"addr"`
	SYNs uint64 `json:"syns"`
}

// GuardRecord is an interval's or the run's counts.
type GuardRecord struct {
	Type            string          `json:"type"` // "interval" or "summary"
	Time            string          `json:"time"`
	DurationSeconds float64         `json:"duration_seconds"`
	DryRun          bool            `json:"dry_run"`
	Packets         uint64          `json:"packets"` // TCP packets the guard decided
	Dropped         uint64          `json:"dropped"` // 0 in a dry run
	Matched         GuardRuleCounts `json:"matched"`
	ScanBlocks      uint64          `json:"scan_blocks"`
	// Per-source entries made, refused (no admission token: the source is
	// governed by the global bucket only) and failed (map full).
	SourcesAdmitted uint64        `json:"sources_admitted"`
	SourcesRefused  uint64        `json:"sources_refused"`
	SourcesFull     uint64        `json:"sources_full"`
	TopSources      []GuardSource `json:"top_sources"`
}

// GuardEvent is a source auto-blocked or released, or a reload.
type GuardEvent struct {
	Type   string `json:"type"` // "auto_block", "release", "reload"
	Time   string `json:"time"`
	Addr   string `json:"addr,omitempty"`
	Rule   string `json:"rule,omitempty"`   // auto_block: the rule ("scan")
	Until  string `json:"until,omitempty"`  // auto_block: the block's end
	Source string `json:"source,omitempty"` // reload: the rules file
	Error  string `json:"error,omitempty"`  // reload refused: why (the old rules stay)
	SYNs   uint64 `json:"syns,omitempty"`   // auto_block: the source's SYNs so far
}
