package output

import (
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// Stamp is the --timestamp value: how a stream's text rows show time.
type Stamp string

const (
	StampWall     Stamp = "wall"     // 15:04:05.000, local time
	StampRelative Stamp = "relative" // seconds since tcplens started, 3 decimals
	StampNone     Stamp = "none"     // no time column
)

// ParseStamp checks a --timestamp value.
func ParseStamp(s string) (Stamp, error) {
	switch v := Stamp(s); v {
	case StampWall, StampRelative, StampNone:
		return v, nil
	}
	return "", fmt.Errorf("unknown timestamp %q: want wall, relative or none", s)
}

// Clock formats the times of text rows. JSON keeps RFC 3339 times
// whatever --timestamp says: scripts want an absolute time.
type Clock struct {
	Stamp Stamp
	Start time.Time // the zero of StampRelative
}

// Header is the time column's title, "" for none.
func (c Clock) Header() string {
	switch c.Stamp {
	case StampRelative:
		return "TIME(s)"
	case StampNone:
		return ""
	}
	return "TIME"
}

// Format is t as this clock shows it.
func (c Clock) Format(t time.Time) string {
	switch c.Stamp {
	case StampRelative:
		return fmt.Sprintf("%.3f", t.Sub(c.Start).Seconds())
	case StampNone:
		return ""
	}
	return t.Format("15:04:05.000")
}

// Widths of an address:port as netip.AddrPort prints it.
const (
	// AddrPortWidth4 fits "255.255.255.255:65535".
	AddrPortWidth4 = 21
	// AddrPortWidth6 fits "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535".
	AddrPortWidth6 = 47
)

// AddrPortWidth is the width an address column starts with, from the
// address family filter (4, 6, or 0 for both): -6 starts wide enough
// for any IPv6 address, so its rows never move; otherwise the column
// starts at IPv4's width and grows with the first longer address.
func AddrPortWidth(family int) int {
	if family == 6 {
		return AddrPortWidth6
	}
	return AddrPortWidth4
}

// Column is one column of a ConnTable.
type Column struct {
	Name  string
	Width int  // least width; the column grows to what it has shown
	Right bool // right-aligned, for numbers
	Wide  bool // shown only with --wide
}

// ConnTable prints a stream of rows in aligned columns, one row at a time
// (a stream cannot wait for its last row to size its columns, as a
// tabwriter does). Each column is as wide as the widest of its title,
// its least width and every value it has shown so far; when a value is
// wider, the column grows from that row on and the header is printed
// again, so titles always stand over their columns. Address columns
// start at the width their family filter allows (AddrPortWidth), so with
// -4 or -6 no row ever moves; without a filter, the first IPv6 address
// wider than an IPv4 one widens them once or a few times.
//
// Columns marked Wide are left out unless wide is set; Row takes a value
// for every column all the same, so a command formats one row one way.
type ConnTable struct {
	w      io.Writer
	clock  Clock
	cols   []Column // shown, the time column first when there is one
	show   []bool   // per column given to NewConnTable
	widths []int
	header bool
	line   strings.Builder
	cells  []string
}

// NewConnTable starts a table on w: a time column as clock says, then cols.
func NewConnTable(w io.Writer, clock Clock, wide bool, cols ...Column) *ConnTable {
	t := &ConnTable{w: w, clock: clock}
	if h := clock.Header(); h != "" {
		width := 12 // 15:04:05.000
		if clock.Stamp == StampRelative {
			width = 8
		}
		t.cols = append(t.cols, Column{Name: h, Width: width, Right: clock.Stamp == StampRelative})
	}
	for _, c := range cols {
		show := wide || !c.Wide
		t.show = append(t.show, show)
		if show {
			t.cols = append(t.cols, c)
		}
	}
	for _, c := range t.cols {
		t.widths = append(t.widths, max(c.Width, utf8.RuneCountInString(c.Name)))
	}
	return t
}

// Row prints one row at time at; cells are the columns' values in the
// order given to NewConnTable, wide ones included.
func (t *ConnTable) Row(at time.Time, cells ...string) error {
	t.cells = t.cells[:0]
	if t.clock.Header() != "" {
		t.cells = append(t.cells, t.clock.Format(at))
	}
	for i, c := range cells {
		if i < len(t.show) && t.show[i] {
			t.cells = append(t.cells, c)
		}
	}
	grew := false
	for i, c := range t.cells {
		if i < len(t.cells)-1 || t.cols[i].Right { // an unpadded last column never needs to grow
			if n := utf8.RuneCountInString(c); n > t.widths[i] {
				t.widths[i], grew = n, true
			}
		}
	}
	if !t.header || grew {
		names := make([]string, len(t.cols))
		for i, c := range t.cols {
			names[i] = c.Name
		}
		if err := t.write(names); err != nil {
			return err
		}
		t.header = true
	}
	return t.write(t.cells)
}

func (t *ConnTable) write(cells []string) error {
	t.line.Reset()
	for i, c := range cells {
		if i > 0 {
			t.line.WriteByte(' ')
		}
		pad := t.widths[i] - utf8.RuneCountInString(c)
		last := i == len(cells)-1
		switch {
		case t.cols[i].Right:
			t.line.WriteString(strings.Repeat(" ", max(pad, 0)))
			t.line.WriteString(c)
		case last:
			// The last column is not padded: no trailing blanks.
			t.line.WriteString(c)
		default:
			t.line.WriteString(c)
			t.line.WriteString(strings.Repeat(" ", max(pad, 0)))
		}
	}
	// An empty last cell would leave the padding of the one before.
	_, err := io.WriteString(t.w, strings.TrimRight(t.line.String(), " ")+"\n")
	return err
}
