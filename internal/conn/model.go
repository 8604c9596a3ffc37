package conn

import (
	"net/netip"
	"time"
)

// TCP states as the kernel numbers them (include/net/tcp_states.h).
const (
	StateEstablished = 1
	StateSynSent     = 2
	StateSynRecv     = 3
	StateFinWait1    = 4
	StateFinWait2    = 5
	StateTimeWait    = 6
	StateClose       = 7
	StateCloseWait   = 8
	StateLastAck     = 9
	StateListen      = 10
	StateClosing     = 11
	StateNewSynRecv  = 12
)

var stateNames = [...]string{"UNKNOWN", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2",
	"TIME_WAIT", "CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING", "NEW_SYN_RECV"}

// StateName is the kernel's name of a TCP state.
func StateName(s uint8) string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "UNKNOWN"
}

// Key identifies a socket on the host: its network namespace (by inode)
// and its two ends, this host's first. Addresses are IPv4 for v4-mapped
// IPv6 ones.
type Key struct {
	NetNS         uint64
	Local, Remote netip.AddrPort
}

// TCPInfo is the part of the kernel's struct tcp_info that tcplens reads,
// units as the kernel gives them (µs for times unless named _ms).
type TCPInfo struct {
	State                  uint8 `json:"state"`
	CAState                uint8 `json:"ca_state"`
	Retransmits            uint8 `json:"retransmits"`
	Probes                 uint8 `json:"probes"`
	Backoff                uint8 `json:"backoff"`
	DeliveryRateAppLimited bool  `json:"delivery_rate_app_limited"`

	RTO            uint32 `json:"rto"`
	ATO            uint32 `json:"ato"`
	SndMSS         uint32 `json:"snd_mss"`
	RcvMSS         uint32 `json:"rcv_mss"`
	Unacked        uint32 `json:"unacked"`
	Sacked         uint32 `json:"sacked"`
	Lost           uint32 `json:"lost"`
	Retrans        uint32 `json:"retrans"`
	LastDataSentMS uint32 `json:"last_data_sent_ms"`
	LastAckRecvMS  uint32 `json:"last_ack_recv_ms"`
	LastDataRecvMS uint32 `json:"last_data_recv_ms"`
	PMTU           uint32 `json:"pmtu"`
	RcvSSThresh    uint32 `json:"rcv_ssthresh"`
	RTT            uint32 `json:"rtt"`
	RTTVar         uint32 `json:"rttvar"`
	SndSSThresh    uint32 `json:"snd_ssthresh"`
	SndCwnd        uint32 `json:"snd_cwnd"`
	AdvMSS         uint32 `json:"advmss"`
	Reordering     uint32 `json:"reordering"`
	RcvRTT         uint32 `json:"rcv_rtt"`
	RcvSpace       uint32 `json:"rcv_space"`
	TotalRetrans   uint32 `json:"total_retrans"`
	PacingRate     uint64 `json:"pacing_rate"`
	MaxPacingRate  uint64 `json:"max_pacing_rate"`
	BytesAcked     uint64 `json:"bytes_acked"`
	BytesReceived  uint64 `json:"bytes_received"`
	SegsOut        uint32 `json:"segs_out"`
	SegsIn         uint32 `json:"segs_in"`
	NotsentBytes   uint32 `json:"notsent_bytes"`
	MinRTT         uint32 `json:"min_rtt"`
	DataSegsIn     uint32 `json:"data_segs_in"`
	DataSegsOut    uint32 `json:"data_segs_out"`
	DeliveryRate   uint64 `json:"delivery_rate"`
	BusyTime       uint64 `json:"busy_time"`
	RwndLimited    uint64 `json:"rwnd_limited"`
	SndbufLimited  uint64 `json:"sndbuf_limited"`
	Delivered      uint32 `json:"delivered"`
	DeliveredCE    uint32 `json:"delivered_ce"`
	BytesSent      uint64 `json:"bytes_sent"`
	BytesRetrans   uint64 `json:"bytes_retrans"`
	DSACKDups      uint32 `json:"dsack_dups"`
	ReordSeen      uint32 `json:"reord_seen"`
	RcvOOOPack     uint32 `json:"rcv_ooopack"`
	SndWnd         uint32 `json:"snd_wnd"`
}

// Sample is one socket as one sock_diag dump saw it.
type Sample struct {
	Key
	State  uint8
	Inode  uint32 // 0 for TIME_WAIT and request sockets
	UID    uint32
	RQueue uint32 // receive queue; on listeners, the accept queue
	WQueue uint32 // send queue (unacknowledged and unsent); on listeners, the backlog
	Info   *TCPInfo
}

// Owner is the process that holds a socket and where it runs.
type Owner struct {
	PID    int
	Comm   string
	Cgroup string // cgroup v2 path, "/" for the root
	// Parsed from Cgroup where it has one: a container runtime's id, a
	// Kubernetes pod's UID, a systemd unit.
	Container string
	PodUID    string
	Unit      string
}

// NetNSCounters are a namespace's listen counters (TcpExt of
// /proc/net/netstat seen from inside it), cumulative.
type NetNSCounters struct {
	ListenOverflows, ListenDrops uint64
}

// Snapshot is everything one refresh read.
type Snapshot struct {
	Time    time.Time
	Samples []Sample
	Owners  map[uint32]Owner // by socket inode
	NetNS   map[uint64]NetNSCounters
	// NetNSNames names namespaces that have a name under /run/netns.
	NetNSNames map[uint64]string
}
