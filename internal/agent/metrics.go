package agent

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tcplens/tcplens/internal/conn"
	"github.com/tcplens/tcplens/internal/events"
	"github.com/tcplens/tcplens/internal/live"
	"github.com/tcplens/tcplens/internal/probe"
)

// Every metric the agent serves is described here, in one place.
var (
	descPackets   = desc("packets_total", "Packets the packet path saw on the interface.", "interface", "direction")
	descTCP       = desc("tcp_packets_total", "TCP segments the packet path saw on the interface.", "interface", "direction")
	descFlags     = desc("tcp_flags_total", "TCP segments seen with each flag set.", "interface", "direction", "flag")
	descAnomalies = desc("tcp_anomalies_total", "TCP segments with an invalid flag combination or a malformed header.", "interface", "direction", "kind")
	descSYN       = desc("syn_total", "SYNs without ACK (connection attempts) seen on the interface.", "interface", "direction")
	descSYNACK    = desc("synack_total", "SYN-ACKs seen on the interface.", "interface", "direction")
	descSYNDrop   = desc("syn_dropped_total", "Packets the packet path dropped on the interface (with --guard-rules: every TCP packet the guard dropped, SYN or not).", "interface")
	descAttached  = desc("interface_attached", "1 for each interface and direction the packet path is attached to, with its hook and mode.", "interface", "direction", "hook", "mode")

	descRetrans     = desc("retransmitted_segments_total", "TCP segments retransmitted (what the kernel added to tcpi_total_retrans; SYN-ACKs as kind synack).", "kind")
	descResets      = desc("resets_total", "TCP resets sent and received, with the kernel's reason for sent ones (6.10+; else unknown).", "direction", "reason")
	descDrops       = desc("drops_total", "TCP packets the kernel dropped, by drop reason.", "reason")
	descTransitions = desc("state_transitions_total", "TCP state changes, from and to.", "from", "to")
	descOverflows   = desc("listen_overflows_total", "Times a listener's accept queue was full (ListenOverflows, summed over network namespaces in scope).")
	descListenDrops = desc("listen_drops_total", "Connection requests a listener dropped (ListenDrops, summed over network namespaces in scope).")
	descNewConns    = desc("connections_opened_total", "Connections seen for the first time (snapshots and events).")
	descConns       = desc("connections", "Connections by TCP state at the last refresh.", "state")
	descVerdicts    = desc("connections_by_verdict", "Open connections by top's verdict at the last refresh.", "verdict")
	descNamespaces  = desc("network_namespaces", "Network namespaces read at the last refresh.")
	descLost        = desc("events_lost_total", "Socket-path events lost, by source and cause (ring_buffer, map_full, recursion).", "source", "cause")
	descSources     = desc("source_attached", "1 for each socket-path source attached, 0 for one asked for that is not.", "source")
	descProgRuns    = desc("bpf_program_runs_total", "Runs of each BPF program (kernel BPF statistics; only while they are enabled).", "program")
	descProgTime    = desc("bpf_program_run_seconds_total", "Time each BPF program ran (kernel BPF statistics; only while they are enabled).", "program")
	descPortRetrans = desc("remote_port_retransmitted_segments_total", "Retransmitted segments by remote port (--per-remote-port; ports past the cap are folded into other).", "remote_port")
	descPortResets  = desc("remote_port_resets_total", "Resets by remote port (--per-remote-port; ports past the cap are folded into other).", "remote_port")
	descPortFolded  = desc("remote_port_folded_total", "Events whose remote port was folded into other because the cap was reached.")
	descRefreshErr  = desc("refresh_errors_total", "Snapshots (sock_diag) that failed.")

	// The guard stage's metrics (--guard-rules). The stage keeps one set of
	// counters for every interface the agent guards (the slots share its
	// maps), so these carry no interface label; per interface there is the
	// packet path's own drop count (guard_interface_drops_total).
	descGuardPackets  = desc("guard_packets_total", "Incoming TCP packets the guard stage decided, on all guarded interfaces together.")
	descGuardDrops    = desc("guard_drops_total", "Incoming TCP packets each guard rule dropped (mode enforce), or would have dropped (mode dry_run: none was dropped), on all guarded interfaces together.", "rule", "mode")
	descGuardIfDrops  = desc("guard_interface_drops_total", "Incoming TCP packets the guard stage dropped on the interface, all rules together (none in a dry run).", "interface")
	descGuardAllowed  = desc("guard_allowed_total", "Incoming TCP packets a guard drop rule matched that an allow CIDR let through.")
	descGuardDryRun   = desc("guard_dry_run", "1 while the guard rules in force only count what they would drop, 0 while they drop.")
	descGuardBlocks   = desc("guard_source_blocks_total", "Sources the guard's scan rule auto-blocked.")
	descGuardReleases = desc("guard_source_releases_total", "Auto-blocked sources whose block ended: it expired, or the source table evicted the source.")
	descGuardBlocked  = desc("guard_blocked_sources", "Sources auto-blocked now.")
	descGuardAdmitted = desc("guard_source_entries_total", "Per-source entries the guard made (sources that the SYN-rate and scan rules follow).")
	descGuardLost     = desc("guard_untracked_syns_total", "SYNs of sources the guard could not follow: no admission token (cause admission_rate: the global SYN rate alone governed them) or the source table refused the entry (cause table_full).", "cause")
	descGuardReloads  = desc("guard_reloads_total", "Guard rule reloads (SIGHUP), by result: ok, or failed (the old rules stayed in force).", "result")
)

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("tcplens_"+name, help, labels, nil)
}

// flagNames and anomalyNames follow struct flag_counters.
var flagNames = []string{"fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr"}

// Metrics holds what the events and refreshes counted, and reads the BPF
// maps at scrape time. Events arrive under the feed's lock (Observer),
// refreshes under mu; Collect takes both in that order.
type Metrics struct {
	feedMu *sync.Mutex // the feed's lock: guards the event counters

	retrans     map[string]uint64
	resets      map[[2]string]uint64
	drops       map[string]uint64
	transitions map[[2]uint8]uint64
	ports       *portCounters
	next        live.Observer // the event log, or nil

	handshake prometheus.Histogram
	rtt       prometheus.Histogram

	mu          sync.Mutex // guards what refreshes set
	byState     map[string]int
	byVerdict   map[string]int
	overflows   uint64
	listenDrops uint64
	opened      uint64
	namespaces  int
	refreshErrs uint64

	// set once the agent has started
	pool  *probe.PacketPool
	guard *guardMetrics // nil: no guard stage
	feed  *live.Feed
	asked []string
}

// histogram makes a histogram with classic buckets and native (sparse)
// buckets both, so that servers with and without native histograms read it.
func histogram(name, help string, buckets []float64) prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "tcplens_" + name, Help: help, Buckets: buckets,
		NativeHistogramBucketFactor:     1.1,
		NativeHistogramMaxBucketNumber:  160,
		NativeHistogramMinResetDuration: time.Hour,
	})
}

// NewMetrics makes empty metrics; perPort > 0 turns on remote-port labels
// capped at that many ports.
func NewMetrics(feedMu *sync.Mutex, perPort int) *Metrics {
	m := &Metrics{feedMu: feedMu,
		retrans: map[string]uint64{}, resets: map[[2]string]uint64{}, drops: map[string]uint64{},
		transitions: map[[2]uint8]uint64{},
		handshake: histogram("handshake_duration_seconds", "TCP handshake latency: connect() or the SYN's arrival to ESTABLISHED.",
			prometheus.ExponentialBuckets(50e-6, 2, 16)),
		rtt: histogram("rtt_seconds", "Smoothed RTT (srtt) of established connections, sampled at each refresh.",
			prometheus.ExponentialBuckets(25e-6, 2, 18)),
		byState: map[string]int{}, byVerdict: map[string]int{},
	}
	if perPort > 0 {
		m.ports = newPortCounters(perPort)
	}
	return m
}

var _ live.Observer = (*Metrics)(nil)

// Retransmit counts a retransmission (called under the feed's lock).
func (m *Metrics) Retransmit(r *events.Retransmit) {
	kind := "data"
	if r.Kind == events.RetransSynAck {
		kind = "synack"
	}
	if m.next != nil {
		m.next.Retransmit(r)
	}
	m.retrans[kind] += uint64(r.Segments)
	if m.ports != nil {
		m.ports.add(r.Remote.Port(), uint64(r.Segments), 0)
	}
}

// Reset counts a reset (called under the feed's lock).
func (m *Metrics) Reset(r *events.Reset) {
	if m.next != nil {
		m.next.Reset(r)
	}
	reason := "unknown"
	if r.ReasonKnown && r.ReasonName != "" {
		reason = strings.ToLower(r.ReasonName)
	} else if r.Direction == events.ResetReceived {
		reason = "none" // the kernel gives reasons for sent resets only
	}
	m.resets[[2]string{r.DirectionName(), reason}]++
	if m.ports != nil {
		m.ports.add(r.Remote.Port(), 0, 1)
	}
}

// StateChange counts a transition and observes a handshake (called under
// the feed's lock).
func (m *Metrics) StateChange(s *events.StateChange) {
	if m.next != nil {
		m.next.StateChange(s)
	}
	if s.Kind == events.StateKindLifetime {
		return
	}
	m.transitions[[2]uint8{s.OldState, s.NewState}]++
	if s.HandshakeKnown {
		m.handshake.Observe(s.Handshake.Seconds())
	}
}

// Drop counts a kernel drop (called under the feed's lock).
func (m *Metrics) Drop(d *events.Drop) {
	if m.next != nil {
		m.next.Drop(d)
	}
	reason := "unknown"
	if d.ReasonName != "" {
		reason = strings.ToLower(d.ReasonName)
	}
	m.drops[reason]++
}

// refreshed takes in a refresh's connections (those in scope) and totals.
func (m *Metrics) refreshed(conns []conn.Conn, tot conn.Totals) {
	byState, byVerdict := map[string]int{}, map[string]int{}
	for i := range conns {
		c := &conns[i]
		if c.Closed {
			continue
		}
		byState[conn.StateName(c.State)]++
		if c.State != conn.StateListen {
			byVerdict[c.Verdict.String()]++
		}
		if c.State == conn.StateEstablished && c.SRTT > 0 {
			m.rtt.Observe(c.SRTT.Seconds())
		}
	}
	m.mu.Lock()
	m.byState, m.byVerdict = byState, byVerdict
	m.overflows += tot.ListenOverflows
	m.listenDrops += tot.ListenDrops
	m.opened += tot.NewConnections
	m.namespaces = tot.Namespaces
	m.mu.Unlock()
}

func (m *Metrics) refreshFailed() {
	m.mu.Lock()
	m.refreshErrs++
	m.mu.Unlock()
}

// stateNames are every TCP state, so that each state's gauge exists (at 0)
// from the first scrape.
var stateNames = func() []string {
	var out []string
	for s := uint8(1); s <= conn.StateNewSynRecv; s++ {
		out = append(out, conn.StateName(s))
	}
	return out
}()

// Describe sends nothing: the agent's metrics depend on what is attached,
// so the collector is unchecked.
func (m *Metrics) Describe(chan<- *prometheus.Desc) {}

// Collect reads the BPF maps and the counters.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	if m.pool != nil {
		dirs := m.pool.Direction().Directions()
		for _, a := range m.pool.Attachments() {
			ifc := a.Interface.Name
			for _, dir := range dirs {
				c, err := m.pool.Counters(a.Slot, dir)
				if err != nil {
					continue
				}
				d := dir.String()
				if dir == probe.DirOut {
					gauge(descAttached, 1, ifc, d, string(probe.HookTC), a.EgressMode)
				} else {
					gauge(descAttached, 1, ifc, d, string(a.Hook), a.Mode)
				}
				counter(descPackets, c.Packets, ifc, d)
				counter(descTCP, c.TcpPackets, ifc, d)
				for i, v := range []uint64{c.Fin, c.Syn, c.Rst, c.Psh, c.Ack, c.Urg, c.Ece, c.Cwr} {
					counter(descFlags, v, ifc, d, flagNames[i])
				}
				counter(descAnomalies, c.SynFin, ifc, d, "syn_fin")
				counter(descAnomalies, c.SynRst, ifc, d, "syn_rst")
				counter(descAnomalies, c.NullFlags, ifc, d, "null")
				counter(descAnomalies, c.Xmas, ifc, d, "xmas")
				counter(descAnomalies, c.Malformed, ifc, d, "malformed")
				counter(descSYN, c.SynNoAck, ifc, d)
				counter(descSYNACK, c.SynAck, ifc, d)
				if dir == probe.DirIn {
					counter(descSYNDrop, c.Dropped, ifc) // rules drop received packets only
					if m.guard != nil {
						// The guard is the agent's only drop rule; per rule
						// its counters are node-wide (guard_drops_total).
						counter(descGuardIfDrops, c.Dropped, ifc)
					}
				}
			}
		}
	}

	if m.guard != nil {
		m.guard.collect(counter, gauge)
	}

	m.feedMu.Lock()
	for kind, v := range m.retrans {
		counter(descRetrans, v, kind)
	}
	for k, v := range m.resets {
		counter(descResets, v, k[0], k[1])
	}
	for r, v := range m.drops {
		counter(descDrops, v, r)
	}
	for k, v := range m.transitions {
		counter(descTransitions, v, conn.StateName(k[0]), conn.StateName(k[1]))
	}
	if m.ports != nil {
		m.ports.collect(counter)
	}
	m.feedMu.Unlock()
	if _, ok := m.retrans["data"]; !ok {
		counter(descRetrans, 0, "data")
	}
	ch <- m.handshake
	ch <- m.rtt

	m.mu.Lock()
	for _, s := range stateNames {
		gauge(descConns, float64(m.byState[s]), s)
	}
	for v := conn.OK; v <= conn.Reset; v++ {
		gauge(descVerdicts, float64(m.byVerdict[v.String()]), v.String())
	}
	counter(descOverflows, m.overflows)
	counter(descListenDrops, m.listenDrops)
	counter(descNewConns, m.opened)
	gauge(descNamespaces, float64(m.namespaces))
	counter(descRefreshErr, m.refreshErrs)
	m.mu.Unlock()

	if m.feed != nil {
		attached := m.feed.Attached()
		for _, s := range m.asked {
			v := 0.0
			for _, a := range attached {
				if a == s {
					v = 1
				}
			}
			gauge(descSources, v, s)
		}
		if losses, err := m.feed.Loss(); err == nil {
			for _, l := range losses {
				counter(descLost, l.RingBuffer, l.Source, "ring_buffer")
				counter(descLost, l.MapFull, l.Source, "map_full")
				counter(descLost, l.Recursion, l.Source, "recursion")
			}
		}
	}
	if bpfStatsEnabled() {
		m.collectProgramStats(ch)
	}
}

// bpfStatsEnabled: the kernel counts run time only while the sysctl is on
// or someone holds a BPF_ENABLE_STATS descriptor (--bpf-stats).
func bpfStatsEnabled() bool {
	if statsHeld.Load() {
		return true
	}
	b, err := os.ReadFile("/proc/sys/kernel/bpf_stats_enabled")
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

func (m *Metrics) collectProgramStats(ch chan<- prometheus.Metric) {
	emit := func(name string, p *ebpf.Program) {
		st, err := p.Stats()
		if err != nil {
			return
		}
		ch <- prometheus.MustNewConstMetric(descProgRuns, prometheus.CounterValue, float64(st.RunCount), name)
		ch <- prometheus.MustNewConstMetric(descProgTime, prometheus.CounterValue, st.Runtime.Seconds(), name)
	}
	if m.feed != nil {
		for src, progs := range m.feed.Programs() {
			for name, p := range progs {
				emit(src+"/"+name, p)
			}
		}
	}
	if m.pool != nil {
		for name, p := range m.pool.Programs() {
			emit("packet/"+name, p)
		}
	}
}

// portCounters are per-remote-port counts, capped: the first limit ports
// seen get a series each, every later one is folded into "other".
type portCounters struct {
	limit   int
	retrans map[string]uint64
	resets  map[string]uint64
	ports   map[uint16]string
	folded  uint64
}

func newPortCounters(limit int) *portCounters {
	return &portCounters{limit: limit, retrans: map[string]uint64{}, resets: map[string]uint64{}, ports: map[uint16]string{}}
}

func (p *portCounters) add(port uint16, retrans, resets uint64) {
	label, ok := p.ports[port]
	if !ok {
		if len(p.ports) < p.limit {
			label = strconv.Itoa(int(port))
			p.ports[port] = label
		} else {
			label = "other"
			p.folded++
		}
	}
	if retrans > 0 {
		p.retrans[label] += retrans
	}
	if resets > 0 {
		p.resets[label] += resets
	}
}

func (p *portCounters) collect(counter func(*prometheus.Desc, uint64, ...string)) {
	for l, v := range p.retrans {
		counter(descPortRetrans, v, l)
	}
	for l, v := range p.resets {
		counter(descPortResets, v, l)
	}
	counter(descPortFolded, p.folded)
}
