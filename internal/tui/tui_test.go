package tui

import (
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/tcplens/tcplens/internal/output"
)

func frame() *Frame {
	rec := func(lport uint16, tx float64, verdict string) output.TopConnRecord {
		return output.TopConnRecord{Type: "conn", Conn: output.Conn{LAddr: "10.0.0.1", LPort: lport, RAddr: "10.0.0.2", RPort: 80},
			State: "ESTABLISHED", TxBytesPerSec: tx, Verdict: verdict, Reasons: []string{verdict + ": because"},
			PID: int(lport), Comm: "app", TCPInfo: map[string]int{"rtt": 7}}
	}
	return &Frame{Totals: &output.TopTotalsRecord{Type: "totals", Time: "t", ByState: map[string]int{"ESTABLISHED": 3}},
		Conns: []output.TopConnRecord{rec(1001, 10, "ok"), rec(1002, 5000, "lossy"), rec(1003, 900, "ok"),
			{Type: "conn", Conn: output.Conn{LAddr: "10.0.0.1", LPort: 1004}, Closed: true, Verdict: "reset"}},
		Recent: []output.TopConnRecord{{Type: "conn", Conn: output.Conn{LAddr: "10.0.0.1", LPort: 1004, RAddr: "10.0.0.3", RPort: 22},
			State: "ESTABLISHED", Closed: true, Verdict: "reset", PID: 9, Comm: "ssh"}}}
}

func press(m *model, keys ...string) {
	for _, k := range keys {
		var msg tea.KeyMsg
		switch k {
		case "enter":
			msg = tea.KeyMsg{Type: tea.KeyEnter}
		case "esc":
			msg = tea.KeyMsg{Type: tea.KeyEsc}
		case "down":
			msg = tea.KeyMsg{Type: tea.KeyDown}
		default:
			msg = tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(k)}
		}
		m.Update(msg)
	}
}

// order is the local ports of the table's rows, top to bottom.
func order(m *model) []uint16 {
	var out []uint16
	for _, r := range m.rows {
		out = append(out, r.LPort)
	}
	return out
}

func TestModelSortFilterDetailQuit(t *testing.T) {
	m := newModel(Options{Interval: time.Second}, func() (*Frame, error) { return frame(), nil })
	m.Update(tea.WindowSizeMsg{Width: 120, Height: 20})
	m.Update(frameMsg{f: frame()})
	if got := order(m); len(got) != 3 || got[0] != 1002 {
		t.Fatalf("sorted by verdict: %v, want the lossy 1002 first and no closed row", got)
	}
	if v := m.View(); !strings.Contains(v, "recently closed (1)") || !strings.Contains(v, "10.0.0.1:1004 -> 10.0.0.3:22  ESTABLISHED  9/ssh") {
		t.Errorf("no recently closed pane:\n%s", v)
	}
	press(m, "s") // tx
	if got := order(m); got[0] != 1002 || got[1] != 1003 || got[2] != 1001 {
		t.Errorf("sorted by tx: %v", got)
	}
	press(m, "r")
	if got := order(m); got[0] != 1001 {
		t.Errorf("reversed: %v", got)
	}
	if v := m.View(); !strings.Contains(v, "sort: tx (reversed)") || !strings.Contains(v, "10.0.0.1:1002") {
		t.Errorf("view:\n%s", v)
	}
	press(m, "/", "1", "0", "0", "3", "enter")
	if got := order(m); len(got) != 1 || got[0] != 1003 {
		t.Errorf("filter 1003: %v", got)
	}
	press(m, "enter")
	if v := m.View(); !strings.Contains(v, "verdict: ok") || !strings.Contains(v, "rtt:7") {
		t.Errorf("detail view:\n%s", v)
	}
	press(m, "esc", "p")
	m.Update(frameMsg{f: &Frame{Totals: &output.TopTotalsRecord{}}})
	if len(m.frame.Conns) != 4 {
		t.Error("paused, yet the frame changed")
	}
	for _, w := range []int{20, 60, 200} { // no panic, no line wider than the screen
		m.Update(tea.WindowSizeMsg{Width: w, Height: 10})
		for _, l := range strings.Split(m.View(), "\n") {
			if n := len([]rune(stripANSI(l))); n > w {
				t.Errorf("width %d: line of %d: %q", w, n, l)
			}
		}
	}
	_, cmd := m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("q")})
	if cmd == nil || cmd() != tea.Quit() {
		t.Error("q does not quit")
	}
}

func stripANSI(s string) string {
	var b strings.Builder
	esc := false
	for _, r := range s {
		switch {
		case r == 0x1b:
			esc = true
		case esc && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'):
			esc = false
		case !esc:
			b.WriteRune(r)
		}
	}
	return b.String()
}
