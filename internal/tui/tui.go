// Package tui is `tcplens top`'s full-screen view, built on bubbletea and
// lipgloss: a header of totals, a table of connections (or of groups), a
// detail view of one connection, and keys to sort, filter, group and
// pause. It only shows what cli hands it; it reads nothing of the kernel.
package tui

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/tcplens/tcplens/internal/output"
)

// Frame is one refresh.
type Frame struct {
	Totals *output.TopTotalsRecord
	Conns  []output.TopConnRecord
	Groups []output.TopGroupRecord
	// Recent is the connections closed lately, newest first, over the
	// last refreshes (Conns holds only this refresh's).
	Recent []output.TopConnRecord
}

// Options configure the screen.
type Options struct {
	Interval time.Duration
	GroupBy  string // the initial grouping, "" for none
	Duration time.Duration
	Count    int
	// Regroup groups the last refresh's connections by a --group-by key.
	Regroup func(key string) []output.TopGroupRecord
}

// GroupKeys are the keys the g key cycles through ("" is no grouping).
var GroupKeys = []string{"", "process", "lport", "raddr", "rnet/24", "container"}

// Run shows the screen until q, the context's end, the duration or
// count refreshes; the terminal is restored on every way out.
func Run(ctx context.Context, opts Options, refresh func() (*Frame, error)) error {
	m := newModel(opts, refresh)
	if opts.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.Duration)
		defer cancel()
	}
	p := tea.NewProgram(m, tea.WithAltScreen(), tea.WithContext(ctx))
	final, err := p.Run()
	if errors.Is(err, tea.ErrProgramKilled) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		err = nil
	}
	if fm, ok := final.(*model); ok && fm.err != nil {
		return fm.err
	}
	return err
}

type frameMsg struct {
	f   *Frame
	err error
}
type tickMsg time.Time

// sortKey is one way to order the table.
type sortKey struct {
	name string
	less func(a, b *output.TopConnRecord) bool
}

var sortKeys = []sortKey{
	{"verdict", func(a, b *output.TopConnRecord) bool { return verdictRank(a.Verdict) > verdictRank(b.Verdict) }},
	{"tx", func(a, b *output.TopConnRecord) bool { return a.TxBytesPerSec > b.TxBytesPerSec }},
	{"rx", func(a, b *output.TopConnRecord) bool { return a.RxBytesPerSec > b.RxBytesPerSec }},
	{"retrans", func(a, b *output.TopConnRecord) bool { return a.RetransInterval > b.RetransInterval }},
	{"srtt", func(a, b *output.TopConnRecord) bool { return a.SRTTUS > b.SRTTUS }},
	{"age", func(a, b *output.TopConnRecord) bool { return a.AgeSeconds > b.AgeSeconds }},
	{"sendq", func(a, b *output.TopConnRecord) bool { return a.SendQ > b.SendQ }},
	{"recvq", func(a, b *output.TopConnRecord) bool { return a.RecvQ > b.RecvQ }},
	{"process", func(a, b *output.TopConnRecord) bool { return a.Owner() < b.Owner() }},
	{"local", func(a, b *output.TopConnRecord) bool { return a.LPort < b.LPort }},
	{"state", func(a, b *output.TopConnRecord) bool { return a.State < b.State }},
}

var verdictOrder = []string{"ok", "application-limited", "rtt-inflated", "send-buffer-limited", "receiver-limited",
	"lossy", "handshake-retrying", "backlog-full", "zero-window", "stalled", "reset"}

func verdictRank(v string) int {
	for i, n := range verdictOrder {
		if n == v {
			return i
		}
	}
	return -1
}

type model struct {
	opts     Options
	refresh  func() (*Frame, error)
	frame    *Frame
	rows     []*output.TopConnRecord
	err      error
	refresh0 int

	width, height int
	sortBy        int
	reverse       bool
	filter        string
	editing       bool
	group         int
	paused        bool
	cursor        int
	detail        bool
	refreshes     int
}

func newModel(opts Options, refresh func() (*Frame, error)) *model {
	m := &model{opts: opts, refresh: refresh, width: 100, height: 30}
	for i, g := range GroupKeys {
		if g == opts.GroupBy {
			m.group = i
		}
	}
	return m
}

func (m *model) Init() tea.Cmd { return m.tick() }

func (m *model) tick() tea.Cmd {
	return tea.Tick(m.opts.Interval, func(t time.Time) tea.Msg { return tickMsg(t) })
}

func (m *model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
	case tickMsg:
		refresh := m.refresh
		return m, func() tea.Msg {
			f, err := refresh()
			return frameMsg{f, err}
		}
	case frameMsg:
		if msg.err != nil {
			m.err = msg.err
			return m, tea.Quit
		}
		m.refreshes++
		if !m.paused {
			m.frame = msg.f
			m.layout()
		}
		if m.opts.Count > 0 && m.refreshes >= m.opts.Count {
			return m, tea.Quit
		}
		return m, m.tick()
	case tea.KeyMsg:
		return m, m.key(msg)
	}
	return m, nil
}

func (m *model) key(k tea.KeyMsg) tea.Cmd {
	if m.editing {
		switch k.Type {
		case tea.KeyEnter, tea.KeyEsc:
			m.editing = false
		case tea.KeyBackspace:
			if len(m.filter) > 0 {
				m.filter = m.filter[:len(m.filter)-1]
			}
		case tea.KeyRunes, tea.KeySpace:
			m.filter += string(k.Runes)
		}
		m.layout()
		return nil
	}
	switch k.String() {
	case "q", "ctrl+c":
		return tea.Quit
	case "esc":
		m.detail = false
	case "enter":
		m.detail = !m.detail && len(m.rows) > 0
	case "s":
		m.sortBy = (m.sortBy + 1) % len(sortKeys)
	case "S":
		m.sortBy = (m.sortBy + len(sortKeys) - 1) % len(sortKeys)
	case "r":
		m.reverse = !m.reverse
	case "/":
		m.editing, m.filter = true, ""
	case "g":
		m.group = (m.group + 1) % len(GroupKeys)
	case "p", " ":
		m.paused = !m.paused
	case "up", "k":
		m.cursor = max(m.cursor-1, 0)
	case "down", "j":
		m.cursor = min(m.cursor+1, max(len(m.rows)-1, 0))
	case "home":
		m.cursor = 0
	}
	m.layout()
	return nil
}

// layout filters and sorts the frame's open connections into rows.
func (m *model) layout() {
	m.rows = m.rows[:0]
	if m.frame == nil {
		return
	}
	for i := range m.frame.Conns {
		c := &m.frame.Conns[i]
		if c.Closed || !m.matches(c) {
			continue
		}
		m.rows = append(m.rows, c)
	}
	less := sortKeys[m.sortBy].less
	sort.SliceStable(m.rows, func(i, j int) bool {
		if m.reverse {
			return less(m.rows[j], m.rows[i])
		}
		return less(m.rows[i], m.rows[j])
	})
	m.cursor = min(m.cursor, max(len(m.rows)-1, 0))
}

// matches is the / filter: every word must appear in the row's endpoints,
// process, state or verdict (port:N and a bare number match ports).
func (m *model) matches(c *output.TopConnRecord) bool {
	hay := strings.Join(append(output.TopRow(c), c.Cgroup), " ")
	for _, w := range strings.Fields(m.filter) {
		if p, err := strconv.Atoi(strings.TrimPrefix(w, "port:")); err == nil {
			if int(c.LPort) != p && int(c.RPort) != p {
				return false
			}
			continue
		}
		if !strings.Contains(hay, w) {
			return false
		}
	}
	return true
}

var (
	headerStyle = lipgloss.NewStyle().Bold(true)
	colStyle    = lipgloss.NewStyle().Bold(true).Reverse(true)
	selStyle    = lipgloss.NewStyle().Reverse(true)
	badStyle    = lipgloss.NewStyle().Foreground(lipgloss.Color("1")).Bold(true)
	warnStyle   = lipgloss.NewStyle().Foreground(lipgloss.Color("3"))
	helpStyle   = lipgloss.NewStyle().Faint(true)
)

func (m *model) View() string {
	if m.frame == nil {
		return "tcplens top: first refresh in " + m.opts.Interval.String() + " (q quits)\n"
	}
	var b strings.Builder
	for _, l := range output.TopHeader(m.frame.Totals) {
		b.WriteString(headerStyle.Render(cut(l, m.width)) + "\n")
	}
	status := fmt.Sprintf("sort: %s", sortKeys[m.sortBy].name)
	if m.reverse {
		status += " (reversed)"
	}
	if g := GroupKeys[m.group]; g != "" {
		status += "  group: " + g
	}
	if m.filter != "" || m.editing {
		status += "  filter: " + m.filter
		if m.editing {
			status += "_"
		}
	}
	if m.paused {
		status += "  PAUSED"
	}
	b.WriteString(cut(status, m.width) + "\n")
	used := strings.Count(b.String(), "\n") + 1 // and the help line
	avail := max(m.height-used, 3)
	switch {
	case m.detail && len(m.rows) > 0:
		b.WriteString(m.detailView(m.rows[m.cursor], avail))
	case GroupKeys[m.group] != "" && m.opts.Regroup != nil:
		b.WriteString(m.groupView(avail))
	default:
		// The recently closed, below the table: at most 5, when any.
		recent := m.recent()
		if n := min(len(recent), 5); n > 0 && avail-n-1 >= 3 {
			b.WriteString(m.tableView(avail - n - 1))
			b.WriteString(colStyle.Render(cut(fmt.Sprintf("recently closed (%d)", len(recent)), m.width)) + "\n")
			for _, c := range recent[:n] {
				l := fmt.Sprintf("%s -> %s  %s  %s  age %s  retrans %d  %s", output.Endpoint(c.LAddr, c.LPort),
					output.Endpoint(c.RAddr, c.RPort), c.State, c.Owner(), output.Age(c.AgeSeconds, c.AgeExact), c.RetransTotal, c.Verdict)
				if c.Verdict != "ok" {
					l = badStyle.Render(cut(l, m.width))
				}
				b.WriteString(cut(l, m.width) + "\n")
			}
		} else {
			b.WriteString(m.tableView(avail))
		}
	}
	b.WriteString(helpStyle.Render(cut("q quit  s/S sort  r reverse  / filter  g group  p pause  ↑↓ select  enter detail  esc back", m.width)))
	return b.String()
}

// recent is the frame's recently closed connections that pass the filter.
func (m *model) recent() []*output.TopConnRecord {
	var out []*output.TopConnRecord
	for i := range m.frame.Recent {
		if c := &m.frame.Recent[i]; m.matches(c) {
			out = append(out, c)
		}
	}
	return out
}

// columns picks the columns that fit the width, in order of importance.
var columnPriority = []int{1, 2, 16, 3, 4, 6, 11, 12, 10, 7, 8, 13, 15, 14, 9, 5, 0}

func (m *model) tableView(avail int) string {
	rows := make([][]string, 0, len(m.rows)+1)
	rows = append(rows, output.TopColumns)
	for _, c := range m.rows {
		rows = append(rows, output.TopRow(c))
	}
	widths := make([]int, len(output.TopColumns))
	for _, r := range rows {
		for i, cell := range r {
			widths[i] = max(widths[i], lipgloss.Width(cell))
		}
	}
	show := make([]bool, len(widths))
	total := 0
	for _, i := range columnPriority {
		if total+widths[i]+1 <= m.width || total == 0 {
			show[i] = true
			total += widths[i] + 1
		}
	}
	line := func(r []string) string {
		var parts []string
		for i, cell := range r {
			if show[i] {
				parts = append(parts, cell+strings.Repeat(" ", widths[i]-lipgloss.Width(cell)))
			}
		}
		return cut(strings.Join(parts, " "), m.width)
	}
	var b strings.Builder
	b.WriteString(colStyle.Render(line(rows[0])) + "\n")
	// Scroll so that the cursor stays on screen.
	body := avail - 1
	first := 0
	if m.cursor >= body {
		first = m.cursor - body + 1
	}
	for i := first; i < len(m.rows) && i-first < body; i++ {
		l := line(rows[i+1])
		switch {
		case i == m.cursor:
			l = selStyle.Render(l)
		case m.rows[i].Verdict != "ok" && m.rows[i].Verdict != "application-limited":
			l = badStyle.Render(l)
		}
		b.WriteString(l + "\n")
	}
	for i := len(m.rows) - first; i < body; i++ {
		b.WriteString("\n")
	}
	return b.String()
}

func (m *model) groupView(avail int) string {
	groups := m.opts.Regroup(GroupKeys[m.group])
	var b strings.Builder
	rows := [][]string{output.TopGroupColumns}
	for i := range groups {
		rows = append(rows, output.TopGroupRow(&groups[i]))
	}
	widths := make([]int, len(output.TopGroupColumns))
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], lipgloss.Width(c))
		}
	}
	for n, r := range rows {
		if n >= avail {
			break
		}
		var parts []string
		for i, c := range r {
			parts = append(parts, c+strings.Repeat(" ", widths[i]-lipgloss.Width(c)))
		}
		l := cut(strings.Join(parts, " "), m.width)
		if n == 0 {
			l = colStyle.Render(l)
		}
		b.WriteString(l + "\n")
	}
	for n := len(rows); n < avail; n++ {
		b.WriteString("\n")
	}
	return b.String()
}

func (m *model) detailView(c *output.TopConnRecord, avail int) string {
	lines := []string{
		fmt.Sprintf("%s -> %s  %s  netns %d %s", output.Endpoint(c.LAddr, c.LPort), output.Endpoint(c.RAddr, c.RPort), c.State, c.NetNS, c.NetNSName),
		fmt.Sprintf("process %s  cgroup %s  container %s  pod %s  unit %s", c.Owner(), dash(c.Cgroup), dash(c.Container), dash(c.PodUID), dash(c.Unit)),
		"verdict: " + c.Verdict,
	}
	for _, r := range c.Reasons {
		lines = append(lines, "  "+r)
	}
	if c.TCPInfo != nil {
		lines = append(lines, "TCP_INFO:")
		lines = append(lines, wrapFields(output.TCPInfoText(c.TCPInfo), m.width)...)
	}
	if len(c.Events) > 0 {
		lines = append(lines, "last events:")
		for _, e := range c.Events {
			lines = append(lines, "  "+e)
		}
	}
	var b strings.Builder
	for i := 0; i < avail; i++ {
		if i < len(lines) {
			l := cut(lines[i], m.width)
			if i == 2 && c.Verdict != "ok" {
				l = badStyle.Render(l)
			} else if i == 2 {
				l = warnStyle.Render(l)
			}
			b.WriteString(l)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func wrapFields(fields []string, width int) []string {
	var out []string
	line := " "
	for _, f := range fields {
		if len(line)+len(f)+1 > width && line != " " {
			out = append(out, line)
			line = " "
		}
		line += " " + f
	}
	return append(out, line)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// cut shortens s to width cells.
func cut(s string, width int) string {
	if width <= 0 || lipgloss.Width(s) <= width {
		return s
	}
	r := []rune(s)
	for len(r) > 0 && lipgloss.Width(string(r)) > width {
		r = r[:len(r)-1]
	}
	return string(r)
}
