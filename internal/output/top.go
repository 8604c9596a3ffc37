package output

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
)

// TopConnRecord is one connection at one refresh of `top`.
type TopConnRecord struct {
	Type string `json:"type"` // "conn"
	Time string `json:"time"`
	Conn
	NetNS     uint64 `json:"netns"`
	NetNSName string `json:"netns_name,omitempty"`
	State     string `json:"state"`
	Inode     uint32 `json:"inode"`
	Closed    bool   `json:"closed,omitempty"`
	// Owner; absent when no process holds the socket.
	PID       int    `json:"pid,omitempty"`
	Comm      string `json:"comm,omitempty"`
	Cgroup    string `json:"cgroup,omitempty"`
	Container string `json:"container,omitempty"`
	PodUID    string `json:"pod_uid,omitempty"`
	Unit      string `json:"unit,omitempty"`

	AgeSeconds float64 `json:"age_seconds"`
	AgeExact   bool    `json:"age_exact"`

	SRTTUS          float64 `json:"srtt_us"`
	MinRTTUS        float64 `json:"min_rtt_us"`
	Cwnd            uint32  `json:"cwnd"`
	SndWnd          uint32  `json:"snd_wnd"`
	RetransTotal    uint32  `json:"retrans_total"`
	RetransInterval uint64  `json:"retrans_interval"`
	TxBytesPerSec   float64 `json:"tx_bytes_per_sec"`
	RxBytesPerSec   float64 `json:"rx_bytes_per_sec"`
	SendQ           uint32  `json:"send_q"`
	NotSent         uint32  `json:"notsent"`
	RecvQ           uint32  `json:"recv_q"`
	// Listeners: the accept queue and the backlog.
	AcceptQ *uint32 `json:"accept_q,omitempty"`
	Backlog *uint32 `json:"backlog,omitempty"`

	Verdict string   `json:"verdict"`
	Reasons []string `json:"reasons"`
	Events  []string `json:"events,omitempty"`
	// TCPInfo is the raw TCP_INFO fields, with -o json --tcp-info.
	TCPInfo any `json:"tcp_info,omitempty"`
}

// TopTotalsRecord closes each refresh.
type TopTotalsRecord struct {
	Type                 string         `json:"type"` // "totals"
	Time                 string         `json:"time"`
	IntervalSeconds      float64        `json:"interval_seconds"`
	Connections          int            `json:"connections"`
	Namespaces           int            `json:"namespaces"`
	ByState              map[string]int `json:"by_state"`
	ByVerdict            map[string]int `json:"by_verdict"`
	NewConnections       uint64         `json:"new_connections"`
	NewPerSec            float64        `json:"new_per_sec"`
	Closed               uint64         `json:"closed"`
	RetransSegments      uint64         `json:"retrans_segments"`
	RetransPerSec        float64        `json:"retrans_per_sec"`
	SYNRetrans           uint64         `json:"syn_retrans"`
	ResetsSent           uint64         `json:"resets_sent"`
	ResetsReceived       uint64         `json:"resets_received"`
	ResetsSentPerSec     float64        `json:"resets_sent_per_sec"`
	ResetsReceivedPerSec float64        `json:"resets_received_per_sec"`
	ListenOverflows      uint64         `json:"listen_overflows"`
	ListenDrops          uint64         `json:"listen_drops"`
	// ListenByNetNS: the namespaces whose overflows or drops grew, by
	// namespace inode.
	ListenByNetNS  map[uint64]TopListenCounts `json:"listen_by_netns,omitempty"`
	Lost           uint64                     `json:"lost"`
	Drops          uint64                     `json:"drops"`
	DropsByReason  map[string]uint64          `json:"drops_by_reason"`
	Handshakes     uint64                     `json:"handshakes"`
	HandshakeAvgUS float64                    `json:"handshake_avg_us"`
	HandshakeMaxUS float64                    `json:"handshake_max_us"`
	EventsMissing  []string                   `json:"events_missing,omitempty"`
	Warnings       []string                   `json:"warnings,omitempty"`
}

// TopGroupRecord is one group of `top --group-by`.
type TopGroupRecord struct {
	Type            string  `json:"type"` // "group"
	Time            string  `json:"time"`
	GroupBy         string  `json:"group_by"`
	Key             string  `json:"key"`
	Connections     int     `json:"connections"`
	TxBytesPerSec   float64 `json:"tx_bytes_per_sec"`
	RxBytesPerSec   float64 `json:"rx_bytes_per_sec"`
	RetransInterval uint64  `json:"retrans_interval"`
	WorstVerdict    string  `json:"worst_verdict"`
	ConnShare       float64 `json:"conn_share"`
	ThroughputShare float64 `json:"throughput_share"`
}

// Rate formats bytes/s for people: B/s, KB/s, MB/s, GB/s (powers of 1000).
func Rate(bps float64) string {
	switch {
	case bps >= 1e9:
		return fmt.Sprintf("%.1fG", bps/1e9)
	case bps >= 1e6:
		return fmt.Sprintf("%.1fM", bps/1e6)
	case bps >= 1e3:
		return fmt.Sprintf("%.1fk", bps/1e3)
	}
	return fmt.Sprintf("%.0f", bps)
}

// Millis formats microseconds as milliseconds, "-" for none.
func Millis(us float64) string {
	if us <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", us/1e3)
}

// Age formats seconds compactly; inexact ages (born before tcplens looked)
// start with ">".
func Age(s float64, exact bool) string {
	var out string
	switch {
	case s >= 3600:
		out = fmt.Sprintf("%.1fh", s/3600)
	case s >= 60:
		out = fmt.Sprintf("%.1fm", s/60)
	default:
		out = fmt.Sprintf("%.1fs", s)
	}
	if !exact {
		return ">" + out
	}
	return out
}

// Endpoint is addr:port, IPv6 in brackets.
func Endpoint(addr string, port uint16) string {
	if strings.Contains(addr, ":") {
		return fmt.Sprintf("[%s]:%d", addr, port)
	}
	return fmt.Sprintf("%s:%d", addr, port)
}

// Owner is "pid/comm" or "-".
func (r *TopConnRecord) Owner() string {
	if r.PID == 0 {
		return "-"
	}
	return fmt.Sprintf("%d/%s", r.PID, r.Comm)
}

// TopListenCounts are one namespace's listen overflows and drops.
type TopListenCounts struct {
	Name      string `json:"netns_name,omitempty"`
	Overflows uint64 `json:"overflows"`
	Drops     uint64 `json:"drops"`
}

// TopHeader is the header lines of one refresh, for text and the screen.
func TopHeader(t *TopTotalsRecord) []string {
	states := make([]string, 0, len(t.ByState))
	for s, n := range t.ByState {
		states = append(states, fmt.Sprintf("%s %d", s, n))
	}
	sort.Strings(states)
	verdicts := make([]string, 0, len(t.ByVerdict))
	for v, n := range t.ByVerdict {
		if v != "ok" {
			verdicts = append(verdicts, fmt.Sprintf("%s %d", v, n))
		}
	}
	sort.Strings(verdicts)
	lines := []string{
		fmt.Sprintf("%s  %d connections in %d namespaces: %s", t.Time, t.Connections, t.Namespaces, strings.Join(states, ", ")),
		fmt.Sprintf("new %.1f/s (%d), closed %d, retrans %.1f seg/s (%d, SYN %d), resets sent %.1f/s (%d) received %.1f/s (%d), listen overflows %d, listen drops %d, lost %d",
			t.NewPerSec, t.NewConnections, t.Closed, t.RetransPerSec, t.RetransSegments, t.SYNRetrans,
			t.ResetsSentPerSec, t.ResetsSent, t.ResetsReceivedPerSec, t.ResetsReceived, t.ListenOverflows, t.ListenDrops, t.Lost),
	}
	if len(t.ListenByNetNS) > 0 {
		nss := make([]uint64, 0, len(t.ListenByNetNS))
		for ns := range t.ListenByNetNS {
			nss = append(nss, ns)
		}
		sort.Slice(nss, func(i, j int) bool { return nss[i] < nss[j] })
		var per []string
		for _, ns := range nss {
			c := t.ListenByNetNS[ns]
			name := c.Name
			if name == "" {
				name = fmt.Sprint(ns)
			}
			per = append(per, fmt.Sprintf("%s %d/%d", name, c.Overflows, c.Drops))
		}
		lines = append(lines, "listen overflows/drops by namespace: "+strings.Join(per, ", "))
	}
	if t.Handshakes > 0 || t.Drops > 0 {
		type kv struct {
			k string
			v uint64
		}
		var reasons []kv
		for k, v := range t.DropsByReason {
			reasons = append(reasons, kv{k, v})
		}
		sort.Slice(reasons, func(i, j int) bool {
			if reasons[i].v != reasons[j].v {
				return reasons[i].v > reasons[j].v
			}
			return reasons[i].k < reasons[j].k
		})
		var top []string
		for i := 0; i < len(reasons) && i < 3; i++ {
			top = append(top, fmt.Sprintf("%s %d", reasons[i].k, reasons[i].v))
		}
		line := fmt.Sprintf("handshakes %d (avg %s ms, max %s ms), drops %d", t.Handshakes, Millis(t.HandshakeAvgUS), Millis(t.HandshakeMaxUS), t.Drops)
		if len(top) > 0 {
			line += ": " + strings.Join(top, ", ")
		}
		lines = append(lines, line)
	}
	if len(verdicts) > 0 {
		lines = append(lines, "unhealthy: "+strings.Join(verdicts, ", "))
	}
	for _, m := range t.EventsMissing {
		lines = append(lines, "events: "+m)
	}
	for _, w := range t.Warnings {
		lines = append(lines, "warning: "+w)
	}
	return lines
}

// TopColumns are the connection table's columns.
var TopColumns = []string{"NETNS", "LOCAL", "REMOTE", "STATE", "PROCESS", "AGE", "SRTT_MS", "MINRTT_MS", "CWND",
	"RETR", "RETR_INT", "TX/s", "RX/s", "SENDQ", "NOTSENT", "RECVQ", "VERDICT"}

// TopRow is one connection's cells under TopColumns.
func TopRow(r *TopConnRecord) []string {
	ns := fmt.Sprint(r.NetNS)
	switch {
	case r.NetNSName != "":
		ns = r.NetNSName
	case r.NetNS == 0:
		ns = "-" // seen only by the events, which carry no namespace
	}
	state := r.State
	if r.Closed {
		state = "closed(" + r.State + ")"
	}
	sendq, recvq := fmt.Sprint(r.SendQ), fmt.Sprint(r.RecvQ)
	if r.AcceptQ != nil {
		sendq, recvq = fmt.Sprintf("backlog %d", *r.Backlog), fmt.Sprintf("accept %d", *r.AcceptQ)
	}
	return []string{ns, Endpoint(r.LAddr, r.LPort), Endpoint(r.RAddr, r.RPort), state, r.Owner(), Age(r.AgeSeconds, r.AgeExact),
		Millis(r.SRTTUS), Millis(r.MinRTTUS), fmt.Sprint(r.Cwnd), fmt.Sprint(r.RetransTotal), fmt.Sprint(r.RetransInterval),
		Rate(r.TxBytesPerSec), Rate(r.RxBytesPerSec), sendq, fmt.Sprint(r.NotSent), recvq, r.Verdict}
}

// TopGroupColumns are the group table's columns.
var TopGroupColumns = []string{"GROUP", "CONNS", "CONN%", "TX/s", "RX/s", "BYTES%", "RETR_INT", "WORST"}

// TopGroupRow is one group's cells.
func TopGroupRow(g *TopGroupRecord) []string {
	return []string{g.Key, fmt.Sprint(g.Connections), fmt.Sprintf("%.1f", 100*g.ConnShare), Rate(g.TxBytesPerSec),
		Rate(g.RxBytesPerSec), fmt.Sprintf("%.1f", 100*g.ThroughputShare), fmt.Sprint(g.RetransInterval), g.WorstVerdict}
}

// TopText prints one refresh as plain text: the header, then the groups
// or the connections (with each unhealthy one's reasons), then the
// recently closed.
func TopText(w io.Writer, t *TopTotalsRecord, conns []TopConnRecord, groups []TopGroupRecord) error {
	for _, l := range TopHeader(t) {
		fmt.Fprintln(w, l)
	}
	fmt.Fprintln(w)
	if groups != nil {
		tb := NewTextTable(w, TopGroupColumns...)
		for i := range groups {
			tb.Row(anySlice(TopGroupRow(&groups[i]))...)
		}
		if err := tb.Flush(); err != nil {
			return err
		}
	} else {
		tb := NewTextTable(w, TopColumns...)
		var closed []*TopConnRecord
		for i := range conns {
			if conns[i].Closed {
				closed = append(closed, &conns[i])
				continue
			}
			tb.Row(anySlice(TopRow(&conns[i]))...)
		}
		if err := tb.Flush(); err != nil {
			return err
		}
		for i := range conns {
			c := &conns[i]
			if c.Verdict != "ok" && !c.Closed {
				fmt.Fprintf(w, "  %s -> %s: %s\n", Endpoint(c.LAddr, c.LPort), Endpoint(c.RAddr, c.RPort), strings.Join(c.Reasons, "; "))
			}
		}
		if len(closed) > 0 {
			fmt.Fprintln(w, "\nrecently closed:")
			tb := NewTextTable(w, TopColumns...)
			for _, c := range closed {
				tb.Row(anySlice(TopRow(c))...)
			}
			if err := tb.Flush(); err != nil {
				return err
			}
		}
	}
	_, err := fmt.Fprintln(w)
	return err
}

// TCPInfoText is a TCP_INFO value as name:value words, sorted by name.
func TCPInfoText(info any) []string {
	b, err := json.Marshal(info)
	if err != nil {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil
	}
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, fmt.Sprintf("%s:%v", k, v))
	}
	sort.Strings(out)
	return out
}
