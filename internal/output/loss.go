package output

import (
	"fmt"
	"strings"
)

// Loss is what a socket-path command did not see: embedded in each
// summary, so `lost` is the total and `lost_by_cause` says why.
type Loss struct {
	Lost        uint64      `json:"lost"`
	LostByCause LostByCause `json:"lost_by_cause"`
}

// LostByCause splits Loss.Lost.
type LostByCause struct {
	// RingBuffer: records the ring buffer had no room for.
	RingBuffer uint64 `json:"ring_buffer"`
	// Recursion: runs of the command's programs that the kernel skipped
	// because a tracing program was already running on that CPU (the
	// programs' recursion_misses); each is an event not seen at all,
	// though with a filter it may have been one the filter would have
	// dropped (the kernel does not say): an upper bound then.
	Recursion uint64 `json:"recursion"`
	// MapFull: per-socket map entries that could not be made; the record
	// still went out, without what the entry would have remembered.
	MapFull uint64 `json:"map_full"`
}

// NewLoss adds up the causes.
func NewLoss(c LostByCause) Loss {
	return Loss{Lost: c.RingBuffer + c.Recursion + c.MapFull, LostByCause: c}
}

// Text is "0 records lost", or the total with its nonzero causes, for
// summaries: "5 records lost (ring buffer 3, recursion 2)".
func (l Loss) Text() string {
	if l.Lost == 0 {
		return "0 records lost"
	}
	var parts []string
	for _, c := range []struct {
		name string
		n    uint64
	}{{"ring buffer", l.LostByCause.RingBuffer}, {"recursion", l.LostByCause.Recursion}, {"map full", l.LostByCause.MapFull}} {
		if c.n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", c.name, c.n))
		}
	}
	return fmt.Sprintf("%s lost (%s)", Plural(l.Lost, "record"), strings.Join(parts, ", "))
}
