package cli

import (
	"time"

	"github.com/spf13/pflag"

	"github.com/tcplens/tcplens/internal/output"
)

// textFlags are how a stream command's text rows look: --timestamp and
// --wide. JSON is not affected: its times stay RFC 3339 and it always
// carries every field.
type textFlags struct {
	timestamp string
	wide      bool
}

func (t *textFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&t.timestamp, "timestamp", "wall", "text rows' time: `wall` (15:04:05.000), relative (seconds since start) or none")
	fs.BoolVar(&t.wide, "wide", false, "text: show every field (JSON always has them)")
}

// style checks the flags; start is the zero of relative timestamps.
func (t *textFlags) style(start time.Time, family int) (textStyle, error) {
	s, err := output.ParseStamp(t.timestamp)
	if err != nil {
		return textStyle{}, usagef("--timestamp: %v", err)
	}
	return textStyle{clock: output.Clock{Stamp: s, Start: start}, wide: t.wide, family: family}, nil
}

// textStyle is what a report needs to lay out text rows. The zero value
// is wall-clock times, default columns, address columns sized for IPv4
// that grow when needed.
type textStyle struct {
	clock  output.Clock
	wide   bool
	family int // 4 or 6 from -4/-6, 0 for both: the address columns' first width
}

// table starts a stream table in this style.
func (s textStyle) table(r interface{ Write([]byte) (int, error) }, cols ...output.Column) *output.ConnTable {
	return output.NewConnTable(r, s.clock, s.wide, cols...)
}

// addrCol is an address:port column sized for the family filter.
func (s textStyle) addrCol(name string) output.Column {
	return output.Column{Name: name, Width: output.AddrPortWidth(s.family)}
}

// prefix is a periodic report's time and a colon, or nothing with
// --timestamp none.
func (s textStyle) prefix(t time.Time) string {
	if s.clock.Stamp == output.StampNone {
		return ""
	}
	return s.clock.Format(t) + ": "
}
