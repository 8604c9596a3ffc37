package conn

import (
	"net/netip"
	"sort"
)

// RetransCounts is what retransmission events said about one connection
// (or all of them) over some span.
type RetransCounts struct {
	Segments uint64 // what the kernel added to the socket's total_retrans
	Events   uint64 // retransmission events
	SynAcks  uint64 // of them, SYN-ACKs
	Failed   uint64 // of them, sends that failed
}

// Add counts one retransmission event of segs segments.
func (c *RetransCounts) Add(segs uint64, synack, failed bool) {
	c.Events++
	c.Segments += segs
	if synack {
		c.SynAcks++
	}
	if failed {
		c.Failed++
	}
}

// RetransEntry is one connection's counts in a RetransTally.
type RetransEntry struct {
	Local, Remote netip.AddrPort
	RetransCounts
}

// RetransTally counts retransmission events per connection between two
// reports: `retrans --interval` prints it, and anything else that wants
// per-connection retransmissions from events uses the same counts.
type RetransTally struct {
	limit  int
	conns  map[tuple]*RetransCounts
	folded RetransCounts
}

// NewRetransTally keeps at most limit connections per report (0: no
// bound); events of further connections are summed in Folded, so a
// flood of SYN-ACK retransmissions to spoofed sources cannot grow it
// without bound, and no event goes uncounted.
func NewRetransTally(limit int) *RetransTally {
	return &RetransTally{limit: limit, conns: map[tuple]*RetransCounts{}}
}

// Add counts one event on the connection local-remote.
func (t *RetransTally) Add(local, remote netip.AddrPort, segs uint64, synack, failed bool) {
	k := tuple{normalize(local), normalize(remote)}
	c := t.conns[k]
	if c == nil {
		if t.limit > 0 && len(t.conns) >= t.limit {
			t.folded.Add(segs, synack, failed)
			return
		}
		c = &RetransCounts{}
		t.conns[k] = c
	}
	c.Add(segs, synack, failed)
}

// Len is the number of connections counted since the last Drain.
func (t *RetransTally) Len() int { return len(t.conns) }

// Folded is what connections past the limit added since the last Drain.
func (t *RetransTally) Folded() RetransCounts { return t.folded }

// Drain returns the counts since the last Drain, busiest connection
// (most segments) first, ties by ends, and starts over.
func (t *RetransTally) Drain() []RetransEntry {
	out := make([]RetransEntry, 0, len(t.conns))
	for k, c := range t.conns {
		out = append(out, RetransEntry{Local: k.local, Remote: k.remote, RetransCounts: *c})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := &out[i], &out[j]
		if a.Segments != b.Segments {
			return a.Segments > b.Segments
		}
		if c := a.Local.Compare(b.Local); c != 0 {
			return c < 0
		}
		return a.Remote.Compare(b.Remote) < 0
	})
	clear(t.conns)
	t.folded = RetransCounts{}
	return out
}
