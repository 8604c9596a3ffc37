package output

import (
	"strings"
	"testing"
	"time"
)

// A value wider than its column widens it from that row on and repeats
// the header; wide-only columns are left out unless asked for; the last
// column is not padded; --timestamp none drops the time column.
func TestConnTable(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 678_000_000, time.UTC)
	cols := []Column{{Name: "ADDR", Width: 5}, {Name: "N", Width: 3, Right: true}, {Name: "X", Wide: true}, {Name: "LAST"}}
	var b strings.Builder
	tb := NewConnTable(&b, Clock{}, false, cols...)
	tb.Row(at, "1.2.3", "7", "x", "a")
	tb.Row(at, "[fd00::1]", "12345", "x", "")
	want := "" +
		"TIME         ADDR    N LAST\n" +
		"03:04:05.678 1.2.3   7 a\n" +
		"TIME         ADDR          N LAST\n" +
		"03:04:05.678 [fd00::1] 12345\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}

	b.Reset()
	tb = NewConnTable(&b, Clock{Stamp: StampNone}, true, cols...)
	tb.Row(at, "1.2.3", "7", "x", "a")
	if want := "ADDR    N X LAST\n1.2.3   7 x a\n"; b.String() != want {
		t.Errorf("wide, no time: got\n%s\nwant\n%s", b.String(), want)
	}

	b.Reset()
	tb = NewConnTable(&b, Clock{Stamp: StampRelative, Start: at.Add(-1500 * time.Millisecond)}, false, cols...)
	tb.Row(at, "1.2.3", "7", "x", "a")
	if want := " TIME(s) ADDR    N LAST\n   1.500 1.2.3   7 a\n"; b.String() != want {
		t.Errorf("relative: got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestParseStamp(t *testing.T) {
	for _, s := range []string{"wall", "relative", "none"} {
		if _, err := ParseStamp(s); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	if _, err := ParseStamp("utc"); err == nil {
		t.Errorf("utc accepted")
	}
}
