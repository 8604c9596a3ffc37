package agent

import (
	"bytes"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/tcplens/tcplens/internal/conn"
	"github.com/tcplens/tcplens/internal/events"
	"github.com/tcplens/tcplens/internal/probe"
)

// fed is metrics with one event of each kind and one refresh.
func fed(t *testing.T, perPort int) *Metrics {
	t.Helper()
	var mu sync.Mutex
	m := NewMetrics(&mu, perPort)
	l, r := netip.MustParseAddrPort("10.0.0.1:80"), netip.MustParseAddrPort("10.0.0.2:40000")
	m.Retransmit(&events.Retransmit{Local: l, Remote: r, Segments: 3, Kind: events.RetransData})
	m.Retransmit(&events.Retransmit{Local: l, Remote: r, Segments: 1, Kind: events.RetransSynAck})
	m.Reset(&events.Reset{Local: l, Remote: r, Direction: events.ResetSent, ReasonKnown: true, ReasonName: "NOT_SPECIFIED"})
	m.Reset(&events.Reset{Local: l, Remote: r, Direction: events.ResetReceived})
	m.StateChange(&events.StateChange{Kind: events.StateKindTransition, OldState: conn.StateSynSent,
		NewState: conn.StateEstablished, Handshake: 300 * time.Microsecond, HandshakeKnown: true})
	m.Drop(&events.Drop{Local: l, Remote: r, ReasonName: "NO_SOCKET", HasReason: true})
	m.refreshed([]conn.Conn{
		{Key: conn.Key{Local: l, Remote: r}, State: conn.StateEstablished, SRTT: 2 * time.Millisecond},
		{Key: conn.Key{Local: l}, State: conn.StateListen},
	}, conn.Totals{ListenOverflows: 2, ListenDrops: 2, NewConnections: 1, Namespaces: 1})
	fg := &fakeGuard{}
	fg.c.Packets, fg.c.Matched[probe.GuardBlock] = 5, 2
	m.guard = newGuardMetrics(fg, false)
	return m
}

// TestMetricsLint: names, units, help and types pass client_golang's
// linter (the rules promtool applies), for the agent's metrics alone and
// with the process, Go and build-info collectors.
func TestMetricsLint(t *testing.T) {
	m := fed(t, 10)
	problems, err := testutil.CollectAndLint(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	reg := Registry(m, "v0.0.0-test", "abc")
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		name := mf.GetName()
		if !strings.HasPrefix(name, "tcplens_") && !strings.HasPrefix(name, "go_") {
			t.Errorf("%s: not under tcplens_ (or the Go runtime's go_)", name)
		}
		if mf.GetType().String() == "COUNTER" && !strings.HasSuffix(name, "_total") {
			t.Errorf("counter %s does not end in _total", name)
		}
	}
}

// TestMetricsValues: what the events and the refresh counted.
func TestMetricsValues(t *testing.T) {
	m := fed(t, 0)
	want := `
# HELP tcplens_resets_total TCP resets sent and received, with the kernel's reason for sent ones (6.10+; else unknown).
# TYPE tcplens_resets_total counter
tcplens_resets_total{direction="received",reason="none"} 1
tcplens_resets_total{direction="sent",reason="not_specified"} 1
# HELP tcplens_retransmitted_segments_total TCP segments retransmitted (what the kernel added to tcpi_total_retrans; SYN-ACKs as kind synack).
# TYPE tcplens_retransmitted_segments_total counter
tcplens_retransmitted_segments_total{kind="data"} 3
tcplens_retransmitted_segments_total{kind="synack"} 1
# HELP tcplens_listen_overflows_total Times a listener's accept queue was full (ListenOverflows, summed over network namespaces in scope).
# TYPE tcplens_listen_overflows_total counter
tcplens_listen_overflows_total 2
`
	if err := testutil.CollectAndCompare(m, strings.NewReader(want),
		"tcplens_resets_total", "tcplens_retransmitted_segments_total", "tcplens_listen_overflows_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(m, "tcplens_connections"); n != len(stateNames) {
		t.Errorf("%d tcplens_connections series, want one per state (%d)", n, len(stateNames))
	}
}

// TestRemotePortCap: past the cap every new port folds into "other", and
// each folded event is counted.
func TestRemotePortCap(t *testing.T) {
	var mu sync.Mutex
	m := NewMetrics(&mu, 10)
	l := netip.MustParseAddrPort("10.0.0.1:80")
	for port := 1; port <= 1000; port++ {
		r := netip.AddrPortFrom(netip.MustParseAddr("10.0.0.2"), uint16(port))
		m.Reset(&events.Reset{Local: l, Remote: r, Direction: events.ResetSent})
		m.Reset(&events.Reset{Local: l, Remote: r, Direction: events.ResetSent})
	}
	if n := testutil.CollectAndCount(m, "tcplens_remote_port_resets_total"); n != 11 {
		t.Errorf("%d remote-port series, want 10 and other", n)
	}
	want := `
# HELP tcplens_remote_port_folded_total Events whose remote port was folded into other because the cap was reached.
# TYPE tcplens_remote_port_folded_total counter
tcplens_remote_port_folded_total 1980
`
	if err := testutil.CollectAndCompare(m, strings.NewReader(want), "tcplens_remote_port_folded_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(prometheus.Collector(m)); n > 200 {
		t.Errorf("%d series in all", n)
	}
}

// TestPromtoolCheckMetrics runs Prometheus's own linter on the text
// exposition, where promtool is installed (Debian's prometheus package).
func TestPromtoolCheckMetrics(t *testing.T) {
	if _, err := exec.LookPath("promtool"); err != nil {
		t.Skip("promtool not installed (apt-get install prometheus)")
	}
	reg := Registry(fed(t, 10), "v0.0.0-test", "abc")
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = &buf
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}
