package conn

import (
	"net/netip"
	"sort"
	"time"
)

// Conn is one connection at one refresh: what `top` shows.
type Conn struct {
	Key
	NetNSName string
	State     uint8
	Inode     uint32
	Owner     Owner // PID 0: no process holds it (TIME_WAIT, orphaned, request sockets)
	// Age since tcplens first saw it; AgeExact when it was born after
	// tcplens's first refresh (then within one interval, or exact from
	// the state events).
	Age      time.Duration
	AgeExact bool

	SRTT, MinRTT, RTTVar time.Duration
	Cwnd, SndWnd         uint32
	RetransTotal         uint32
	RetransInterval      uint64
	// Throughput over the interval in bytes/s: sent and acknowledged
	// (tcpi_bytes_acked), and received (tcpi_bytes_received).
	TxBps, RxBps float64
	SendQ        uint32 // unacknowledged and unsent bytes (on listeners: the backlog)
	NotSent      uint32 // written by the application, not yet sent
	RecvQ        uint32 // received, not yet read (on listeners: the accept queue)

	Verdict Verdict
	Reasons []string
	Info    *TCPInfo // the last TCP_INFO, nil when the kernel gives none

	// Closed: it closed since the last refresh (seen only through events,
	// or through the snapshot that no longer holds it).
	Closed bool
	Events []string // the last socket-path events on it, oldest first
}

// Totals are the header of one refresh.
type Totals struct {
	Time            time.Time
	Elapsed         time.Duration
	Connections     int
	ByState         map[string]int
	Namespaces      int
	NewConnections  uint64 // opened since the last refresh, including those already closed again
	Closed          uint64 // closed since the last refresh
	RetransSegments uint64 // retransmitted in the interval (TCP_INFO deltas, plus closed connections' from events)
	SYNRetrans      uint64
	ResetsSent      uint64
	ResetsReceived  uint64
	ListenOverflows uint64
	ListenDrops     uint64
	// ListenByNetNS is the growth of each namespace's counters, for the
	// namespaces where they grew.
	ListenByNetNS map[uint64]ListenCounts
	Lost          uint64 // socket-path events lost (ring buffer, recursion)
	// Drops are TCP packets the kernel dropped in the interval, by reason.
	Drops map[string]uint64
	// Handshakes completed in the interval, and their latency (SYN_SENT or
	// SYN_RECV to ESTABLISHED).
	Handshakes                 uint64
	HandshakeAvg, HandshakeMax time.Duration
	ByVerdict                  map[string]int
	// EventsMissing says which socket-path events are not seen, and why.
	EventsMissing []string
}

// ListenCounts are one namespace's listen overflows and drops (netstat's
// TcpExt ListenOverflows and ListenDrops) over an interval.
type ListenCounts struct {
	Name             string // the namespace's name under /run/netns, if any
	Overflows, Drops uint64
}

// Rates per second over the interval.
func (t *Totals) PerSecond(n uint64) float64 {
	if t.Elapsed <= 0 {
		return 0
	}
	return float64(n) / t.Elapsed.Seconds()
}

// Tracker turns snapshots and events into connections with verdicts.
// It is not safe for concurrent use; the event methods and Refresh are
// called from one goroutine (cli serialises them).
type Tracker struct {
	th       Thresholds
	prevTime time.Time
	// The last refresh's connections, and where each key is among them.
	// A Conn carries all the history a socket needs (its TCP_INFO, its
	// age), so the tracker keeps no other copy: at 10,000 connections a
	// second one cost ~7 MB (BENCHMARKS.md).
	prevConns []Conn
	prev      map[Key]int32
	netns     map[uint64]NetNSCounters
	started   bool

	// Between two refreshes, from the socket-path events.
	synRetrans uint64
	resets     map[tuple]bool
	resetsSent uint64
	resetsRecv uint64
	closed     []closedConn
	opened     uint64 // connections seen opening (SYN_SENT or SYN_RECV)
	drops      map[string]uint64
	handshakes uint64
	hsSum      time.Duration
	hsMax      time.Duration
	lost       uint64
	eventNotes map[tuple][]string
	// Recently is the closed connections of the last few refreshes.
	recently []Conn
}

// tuple is a connection's ends without the namespace: socket-path events
// carry no namespace, so they match every namespace's socket with those
// ends (test namespaces with equal addresses and ports are the case where
// that is wrong; it is rare, ports being random).
type tuple struct{ local, remote netip.AddrPort }

type closedConn struct {
	tuple
	at        time.Time
	lastState uint8
	lifetime  time.Duration
	fromStart bool
	tx, rx    uint64
	retrans   uint32
	pid       uint32
	comm      string
}

// NewTracker starts with no history.
func NewTracker(th Thresholds) *Tracker {
	return &Tracker{th: th, prev: map[Key]int32{}, resets: map[tuple]bool{},
		eventNotes: map[tuple][]string{}}
}

func normalize(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

// maxEventTuples bounds the connections that events between two refreshes
// keep details of (per-connection counts, notes, closed connections): a
// flood of SYNs from spoofed sources makes a SYN-ACK retransmission for
// each, and the tracker must not grow with it. Past the bound, the totals
// still count every event.
const maxEventTuples = 1 << 16

func (t *Tracker) note(k tuple, s string) {
	if _, ok := t.eventNotes[k]; !ok && len(t.eventNotes) >= maxEventTuples {
		return
	}
	n := append(t.eventNotes[k], s)
	if len(n) > 8 {
		n = n[len(n)-8:]
	}
	t.eventNotes[k] = n
}

// Retransmit records a retransmission event: segs segments (synack: a
// SYN-ACK's).
func (t *Tracker) Retransmit(at time.Time, local, remote netip.AddrPort, segs uint64, state uint8, synack bool) {
	// Per connection, a snapshot's TCP_INFO deltas count the segments
	// (RetransInterval), and a closed connection's lifetime its total.
	k := tuple{normalize(local), normalize(remote)}
	if synack || state == StateSynSent || state == StateSynRecv {
		t.synRetrans += segs
	}
	t.note(k, at.Format("15:04:05.000")+" retransmit in "+StateName(state))
}

// ResetEvent records a reset sent or received on the connection.
func (t *Tracker) ResetEvent(at time.Time, local, remote netip.AddrPort, sent bool) {
	k := tuple{normalize(local), normalize(remote)}
	if len(t.resets) < maxEventTuples {
		t.resets[k] = true
		// The other end, when it is on this host too (another namespace),
		// took part in the same reset: a kernel may trace only one side of it
		// (6.1 traces no reset sent by an aborting close).
		t.resets[tuple{k.remote, k.local}] = true
	}
	dir := "received"
	if sent {
		t.resetsSent++
		dir = "sent"
	} else {
		t.resetsRecv++
	}
	t.note(k, at.Format("15:04:05.000")+" reset "+dir)
}

// Drop records a TCP packet the kernel dropped, by its reason's name.
func (t *Tracker) Drop(at time.Time, local, remote netip.AddrPort, reason string) {
	if t.drops == nil {
		t.drops = map[string]uint64{}
	}
	if reason == "" {
		reason = "UNKNOWN"
	}
	t.drops[reason]++
	t.note(tuple{normalize(local), normalize(remote)}, at.Format("15:04:05.000")+" drop "+reason)
}

// Handshake records a handshake's latency (a transition to ESTABLISHED).
func (t *Tracker) Handshake(d time.Duration) {
	t.handshakes++
	t.hsSum += d
	t.hsMax = max(t.hsMax, d)
}

// StateChange records a transition; opening states count new connections.
func (t *Tracker) StateChange(at time.Time, local, remote netip.AddrPort, from, to uint8) {
	// A passive open's child socket is born in SYN_RECV without a
	// transition: its first is SYN_RECV -> ESTABLISHED.
	if to == StateSynSent || (from == StateSynRecv && to == StateEstablished) {
		t.opened++
	}
	k := tuple{normalize(local), normalize(remote)}
	t.note(k, at.Format("15:04:05.000")+" "+StateName(from)+" -> "+StateName(to))
}

// Lifetime records a connection that reached CLOSE.
func (t *Tracker) Lifetime(at time.Time, local, remote netip.AddrPort, lastState uint8, lifetime time.Duration,
	fromStart bool, tx, rx uint64, retrans uint32, pid uint32, comm string) {
	if len(t.closed) >= maxEventTuples {
		return
	}
	t.closed = append(t.closed, closedConn{tuple: tuple{normalize(local), normalize(remote)}, at: at, lastState: lastState,
		lifetime: lifetime, fromStart: fromStart, tx: tx, rx: rx, retrans: retrans, pid: pid, comm: comm})
}

// Lost adds events lost since the last call.
func (t *Tracker) Lost(n uint64) { t.lost += n }

// Refresh joins a snapshot with the events since the last one and returns
// every connection, sorted by namespace and ends, and the totals. The
// tracker keeps the returned connections as the next refresh's history:
// callers read them and must not modify them.
func (t *Tracker) Refresh(s *Snapshot) ([]Conn, Totals) {
	elapsed := time.Duration(0)
	if !t.prevTime.IsZero() {
		elapsed = s.Time.Sub(t.prevTime)
	}
	tot := Totals{Time: s.Time, Elapsed: elapsed, ByState: map[string]int{}, ByVerdict: map[string]int{},
		Namespaces: len(s.NetNS), RetransSegments: 0, SYNRetrans: t.synRetrans,
		ResetsSent: t.resetsSent, ResetsReceived: t.resetsRecv, Lost: t.lost, Drops: t.drops,
		Handshakes: t.handshakes, HandshakeMax: t.hsMax}
	if t.handshakes > 0 {
		tot.HandshakeAvg = t.hsSum / time.Duration(t.handshakes)
	}
	overflows := map[uint64]uint64{}
	for ns, c := range s.NetNS {
		if p, ok := t.netns[ns]; ok && t.started {
			of, dr := c.ListenOverflows-p.ListenOverflows, c.ListenDrops-p.ListenDrops
			if c.ListenOverflows < p.ListenOverflows {
				of = 0
			}
			if c.ListenDrops < p.ListenDrops {
				dr = 0
			}
			overflows[ns] = of
			tot.ListenOverflows += of
			tot.ListenDrops += dr
			if of > 0 || dr > 0 {
				if tot.ListenByNetNS == nil {
					tot.ListenByNetNS = map[uint64]ListenCounts{}
				}
				tot.ListenByNetNS[ns] = ListenCounts{Name: s.NetNSNames[ns], Overflows: of, Drops: dr}
			}
		}
	}
	// The connections the events saw close, and which of them the
	// snapshot still holds (a small set: not every socket's ends).
	lifetimes := map[tuple]closedConn{}
	for _, cc := range t.closed {
		lifetimes[cc.tuple] = cc
	}
	seenClosed := map[tuple]bool{}
	next := make(map[Key]int32, len(s.Samples))
	conns := make([]Conn, 0, len(s.Samples))
	var newSeen uint64
	for i := range s.Samples {
		sm := &s.Samples[i]
		tp := tuple{sm.Local, sm.Remote}
		if _, ok := lifetimes[tp]; ok {
			seenClosed[tp] = true
		}
		if _, dup := next[sm.Key]; dup {
			continue // the same socket in both the IPv4 and the IPv6 dump
		}
		var prevInfo *TCPInfo
		firstSeen, exact := s.Time, t.started
		if j, ok := t.prev[sm.Key]; ok {
			p := &t.prevConns[j]
			prevInfo, firstSeen, exact = p.Info, t.prevTime.Add(-p.Age), p.AgeExact
		} else if t.started && sm.State != StateListen {
			newSeen++
		}
		next[sm.Key] = int32(len(conns))
		c := Conn{Key: sm.Key, NetNSName: s.NetNSNames[sm.NetNS], State: sm.State, Inode: sm.Inode,
			Age: s.Time.Sub(firstSeen), AgeExact: exact, Info: sm.Info,
			SendQ: sm.WQueue, RecvQ: sm.RQueue, Events: t.eventNotes[tp]}
		if o, ok := s.Owners[sm.Inode]; ok && sm.Inode != 0 {
			c.Owner = o
		}
		if in := sm.Info; in != nil {
			c.SRTT = time.Duration(in.RTT) * time.Microsecond
			c.MinRTT = time.Duration(in.MinRTT) * time.Microsecond
			c.RTTVar = time.Duration(in.RTTVar) * time.Microsecond
			c.Cwnd, c.SndWnd, c.NotSent = in.SndCwnd, in.SndWnd, in.NotsentBytes
			c.RetransTotal = in.TotalRetrans
			if p := prevInfo; p != nil && elapsed > 0 && in.BytesAcked >= p.BytesAcked && in.BytesReceived >= p.BytesReceived {
				c.TxBps = float64(in.BytesAcked-p.BytesAcked) / elapsed.Seconds()
				c.RxBps = float64(in.BytesReceived-p.BytesReceived) / elapsed.Seconds()
				if in.TotalRetrans >= p.TotalRetrans {
					c.RetransInterval = uint64(in.TotalRetrans - p.TotalRetrans)
				}
			} else if t.started && prevInfo == nil {
				// Born in this interval: all of it is this interval's.
				c.RetransInterval = uint64(in.TotalRetrans)
			}
		}
		tot.RetransSegments += c.RetransInterval
		c.Verdict, c.Reasons = Judge(Interval{Sample: *sm, Prev: prevInfo, Elapsed: elapsed,
			NetNSOverflows: overflows[sm.NetNS], ResetSeen: t.resets[tp]}, t.th)
		conns = append(conns, c)
		tot.ByState[StateName(sm.State)]++
		tot.ByVerdict[c.Verdict.String()]++
	}
	tot.Connections = len(conns)

	// Connections that closed since the last refresh: those the snapshot
	// lost, and those the events saw close without a snapshot seeing them.
	var closedNow []Conn
	for k, j := range t.prev {
		last := &t.prevConns[j]
		if _, still := next[k]; still || last.State == StateListen {
			continue
		}
		c := *last
		c.Closed, c.TxBps, c.RxBps, c.RetransInterval = true, 0, 0, 0
		tp := tuple{k.Local, k.Remote}
		if cc, ok := lifetimes[tp]; ok {
			delete(lifetimes, tp)
			if cc.retrans >= c.RetransTotal {
				c.RetransInterval = uint64(cc.retrans - c.RetransTotal)
			}
			c.RetransTotal = cc.retrans
			c.Age, c.AgeExact = cc.lifetime, cc.fromStart
		}
		c.Events = t.eventNotes[tp]
		c.Verdict, c.Reasons = closedVerdict(c, t.resets[tp])
		tot.RetransSegments += c.RetransInterval
		closedNow = append(closedNow, c)
	}
	var unseenOpened uint64
	for _, cc := range t.closed {
		if _, ok := lifetimes[cc.tuple]; !ok || seenClosed[cc.tuple] {
			continue
		}
		delete(lifetimes, cc.tuple)
		// Opened and closed between two refreshes: only the events saw it.
		c := Conn{Key: Key{Local: cc.local, Remote: cc.remote}, State: cc.lastState, Closed: true,
			Age: cc.lifetime, AgeExact: cc.fromStart, RetransTotal: cc.retrans, RetransInterval: uint64(cc.retrans),
			Owner: Owner{PID: int(cc.pid), Comm: cc.comm}, Events: t.eventNotes[cc.tuple]}
		c.Verdict, c.Reasons = closedVerdict(c, t.resets[cc.tuple])
		tot.RetransSegments += c.RetransInterval
		if cc.fromStart {
			unseenOpened++
		}
		closedNow = append(closedNow, c)
	}
	sort.Slice(closedNow, func(i, j int) bool { return lessKey(closedNow[i].Key, closedNow[j].Key) })
	tot.Closed = uint64(len(closedNow))
	// New connections: the larger of what the events saw open and what
	// the snapshots saw appear (events may be off or lost).
	tot.NewConnections = max(t.opened, newSeen+unseenOpened)
	if !t.started {
		tot.NewConnections = 0
	}
	sort.Slice(conns, func(i, j int) bool { return lessKey(conns[i].Key, conns[j].Key) })
	for i := range conns {
		next[conns[i].Key] = int32(i) // where sorting moved it
	}

	t.recently = append(closedNow, t.recently...)
	if len(t.recently) > 50 {
		t.recently = t.recently[:50]
	}
	t.prev, t.prevConns, t.prevTime, t.netns, t.started = next, conns, s.Time, s.NetNS, true
	t.resets, t.closed = map[tuple]bool{}, nil
	t.synRetrans, t.resetsSent, t.resetsRecv, t.opened, t.lost = 0, 0, 0, 0, 0
	t.drops, t.handshakes, t.hsSum, t.hsMax = nil, 0, 0, 0
	if len(t.eventNotes) > 4*len(next)+1024 {
		t.eventNotes = map[tuple][]string{}
	}
	return append(conns, closedNow...), tot
}

// RecentlyClosed is the last closed connections, newest first.
func (t *Tracker) RecentlyClosed() []Conn { return t.recently }

// closedVerdict judges a connection that is gone: reset if one was seen.
func closedVerdict(c Conn, reset bool) (Verdict, []string) {
	if reset {
		return Reset, []string{"reset: a reset was sent or received before it closed"}
	}
	return OK, []string{"closed"}
}

func lessKey(a, b Key) bool {
	if a.NetNS != b.NetNS {
		return a.NetNS < b.NetNS
	}
	if c := a.Local.Compare(b.Local); c != 0 {
		return c < 0
	}
	return a.Remote.Compare(b.Remote) < 0
}
