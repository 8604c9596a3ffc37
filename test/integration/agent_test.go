package integration

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/tcplens/tcplens/internal/testnet"
	"github.com/tcplens/tcplens/internal/testutil"
	"github.com/tcplens/tcplens/internal/testutil/prom"
)

// agentListen is where the test's agents listen, inside their namespace.
const agentListen = "127.0.0.1:9464"

// agentProc is a `tcplens agent` run in a namespace.
type agentProc struct {
	cmd    *exec.Cmd
	ns     *testnet.NS
	out    *testnet.SyncBuffer
	done   chan error
	exited bool
}

// startAgent runs the agent in ns and waits until /readyz says ready.
func startAgent(t *testing.T, ns *testnet.NS, args ...string) *agentProc {
	t.Helper()
	return startAgentUntil(t, ns, func(*agentProc) bool {
		_, err := prom.Fetch(ns.Name, "http://"+agentListen+"/readyz")
		return err == nil
	}, args...)
}

// startAgentUntil runs the agent in ns and waits until ready says so.
func startAgentUntil(t *testing.T, ns *testnet.NS, ready func(*agentProc) bool, args ...string) *agentProc {
	t.Helper()
	bin := testnet.Tcplens(t)
	a := &agentProc{ns: ns, out: &testnet.SyncBuffer{}, done: make(chan error, 1)}
	a.cmd = ns.Command(bin, append([]string{"agent", "--listen", agentListen}, args...)...)
	a.cmd.Stdout, a.cmd.Stderr = a.out, a.out
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { a.done <- a.cmd.Wait() }()
	t.Cleanup(func() {
		if !a.exited {
			a.cmd.Process.Kill()
			<-a.done
		}
	})
	// Loading every program takes seconds, more under emulation.
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case err := <-a.done:
			a.exited = true
			t.Fatalf("agent exited (%v) before it was ready:\n%s", err, a.out)
		default:
		}
		if ready(a) {
			return a
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent not ready after 90 s:\n%s", a.out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop sends SIGTERM and wants exit 0 within 30 s.
func (a *agentProc) stop(t *testing.T) {
	t.Helper()
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-a.done:
		a.exited = true
		if err != nil {
			t.Errorf("agent after SIGTERM: %v, want exit 0:\n%s", err, a.out)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("agent still running 30 s after SIGTERM:\n%s", a.out)
	}
}

// metrics fetches /metrics.
func (a *agentProc) metrics(t *testing.T) string {
	t.Helper()
	b, err := prom.Fetch(a.ns.Name, "http://"+agentListen+"/metrics")
	if err != nil {
		t.Fatalf("fetch /metrics: %v", err)
	}
	return string(b)
}

// seriesCount counts the samples in an exposition.
func seriesCount(body string) int {
	n := 0
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if l := sc.Text(); l != "" && !strings.HasPrefix(l, "#") {
			n++
		}
	}
	return n
}

// query asks Prometheus for one value.
func query(t *testing.T, s *prom.Server, expr string) float64 {
	t.Helper()
	v, err := s.Query(expr)
	if err != nil {
		t.Fatalf("query %s: %v", expr, err)
	}
	return v
}

// queryText renders expr's samples for a failure message.
func queryText(t *testing.T, s *prom.Server, expr string) string {
	t.Helper()
	v, err := s.Vector(expr)
	if err != nil {
		return err.Error()
	}
	if len(v) == 0 {
		return "none"
	}
	var b strings.Builder
	for i, smp := range v {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%v %v", smp.Labels, smp.Value)
	}
	return b.String()
}

// TestAgentMetricsMatchTheKernel runs the agent in B, watching B's veth
// and the socket path filtered to the test server's port, scraped every
// second by a real Prometheus in B. A opens connections to B, one of them
// streams through a link flap (retransmissions), and some are aborted
// (resets). Prometheus must then answer: SYNs on B's interface == the
// connections A made; retransmitted segments == the sender's
// tcpi_total_retrans and A's Tcp:RetransSegs growth; resets sent == the
// aborts == the namespaces' Tcp:OutRsts growth; the connections gauge ==
// `ss` in B. `promtool check metrics` accepts the body. SIGTERM exits 0
// and leaves nothing attached to B's veth.
func TestAgentMetricsMatchTheKernel(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	p := testnet.NewPair(t)
	srv := p.B.Listen(t, testnet.IPv4, 0)
	port := fmt.Sprint(srv.Addr.Port())
	logFile := filepath.Join(t.TempDir(), "events.jsonl")
	a := startAgent(t, p.B, "-i", p.B.Link, "--port", port, "--netns", "self", "--interval", "200ms",
		"--bpf-stats", "--log", "resets,retrans", "--log-file", logFile)
	s := prom.Start(t, prom.Options{Targets: []string{agentListen}, NetNS: p.B.Name, Features: []string{"native-histograms"}})

	snmpA0, err := p.A.SNMP()
	if err != nil {
		t.Fatal(err)
	}
	snmpB0, err := p.B.SNMP()
	if err != nil {
		t.Fatal(err)
	}

	const open, aborted = 10, 5
	conns := p.A.OpenConns(t, srv.Addr, open)
	defer testnet.CloseConns(t, conns)

	// Retransmissions: A streams to B through a flap of B's link.
	bulk, err := p.A.Dial(srv.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer bulk.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sendErr error
	wg.Add(1)
	go func() { defer wg.Done(); sendErr = sendUntil(bulk, stop, 10*time.Second) }()
	// Under an emulated CPU (6.1 under qemu, beside the other tests) three
	// flaps once all fell where nothing was in flight; six bound it.
	for attempt := 0; attempt < 6; attempt++ {
		time.Sleep(300 * time.Millisecond)
		p.B.FlapLink(t, time.Second)
		time.Sleep(700 * time.Millisecond)
		if info, err := bulk.TCPInfo(); err != nil || info.Total_retrans > 0 {
			break
		}
	}
	close(stop)
	wg.Wait()
	if sendErr != nil {
		t.Fatalf("send: %v", sendErr)
	}
	info, err := bulk.WaitAcked(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if info.Total_retrans == 0 {
		t.Fatal("the link flap caused no retransmission: the test proves nothing")
	}

	// Resets: aborts (SO_LINGER 0, close) of accepted connections.
	for i := 0; i < aborted; i++ {
		c, err := p.A.Dial(srv.Addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		want := open + 1 + i + 1
		testnet.WaitFor(t, 5*time.Second, "the server to accept", func() bool { return srv.Accepted() >= want })
		if err := c.SetLinger0(); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	time.Sleep(500 * time.Millisecond) // the resets arrive, a refresh or two
	snmpA1, err := p.A.SNMP()
	if err != nil {
		t.Fatal(err)
	}
	snmpB1, err := p.B.SNMP()
	if err != nil {
		t.Fatal(err)
	}
	s.Sync(t)

	made := open + 1 + aborted
	if got := query(t, s, fmt.Sprintf(`tcplens_syn_total{interface=%q,direction="in"}`, p.B.Link)); got != float64(made) {
		t.Errorf("tcplens_syn_total in = %v, want %d (connections made)", got, made)
	}
	// B answered each with a SYN-ACK (egress, the default --direction both).
	if got := query(t, s, fmt.Sprintf(`tcplens_synack_total{interface=%q,direction="out"}`, p.B.Link)); got != float64(made) {
		t.Errorf("tcplens_synack_total out = %v, want %d (connections made)", got, made)
	}
	retransSegs := snmpA1["Tcp:RetransSegs"] - snmpA0["Tcp:RetransSegs"]
	got := query(t, s, `sum(tcplens_retransmitted_segments_total)`)
	if got != float64(info.Total_retrans) || got != float64(retransSegs) {
		t.Errorf("tcplens_retransmitted_segments_total = %v, want tcpi_total_retrans %d (A's Tcp:RetransSegs grew %d); events lost by source and cause: %s",
			got, info.Total_retrans, retransSegs, queryText(t, s, `tcplens_events_lost_total != 0`))
	}
	outRsts := snmpA1["Tcp:OutRsts"] - snmpA0["Tcp:OutRsts"] + snmpB1["Tcp:OutRsts"] - snmpB0["Tcp:OutRsts"]
	// The namespaces' counters cover every port: B also holds Prometheus's
	// scrapes of the agent, and once two resets more than the aborts were
	// counted there. The metric covers the test's port (--port) only.
	if got := query(t, s, `sum(tcplens_resets_total{direction="sent"})`); got != aborted || outRsts < aborted {
		t.Errorf("resets sent = %v, want %d aborts (Tcp:OutRsts of A and B grew %d)", got, aborted, outRsts)
	} else if outRsts > aborted {
		t.Logf("Tcp:OutRsts of A and B grew %d for %d aborts: resets on other ports", outRsts, aborted)
	}
	if got := query(t, s, `sum(tcplens_resets_total{direction="received"})`); got != aborted {
		t.Errorf("resets received = %v, want %d", got, aborted)
	}
	// The gauges count what the filters let through, as ss does here (the
	// namespace also holds Prometheus's own connections).
	ss := strings.Count(strings.TrimSpace(p.B.Run(t, "ss", "-tanH", fmt.Sprintf("( sport = :%s or dport = :%s )", port, port))), "\n") + 1
	// The gauges are the agent's last refresh. Once, under 6.12 in qemu
	// beside the other tests, one scrape found both at 0 while every
	// connection was open (not reproduced alone, 3 of 3): a mismatch is
	// logged and asked again after the next scrape, and fails only then.
	for try := 1; ; try++ {
		all := query(t, s, `sum(tcplens_connections)`)
		est := query(t, s, `tcplens_connections{state="ESTABLISHED"}`)
		if all == float64(ss) && est == open+1 {
			break
		}
		msg := fmt.Sprintf("sum(tcplens_connections) = %v, want %d (ss -tan in B); ESTABLISHED = %v, want %d", all, ss, est, open+1)
		if try == 2 {
			t.Error(msg)
			break
		}
		t.Logf("%s: asking again after the next scrape", msg)
		s.Sync(t)
	}
	if got := query(t, s, `sum(tcplens_interface_attached{interface=`+fmt.Sprintf("%q", p.B.Link)+`})`); got != 2 {
		t.Errorf("interface_attached = %v, want 2 (in and out)", got)
	}
	if got := query(t, s, `histogram_count(tcplens_handshake_duration_seconds)`); got < float64(made) {
		t.Errorf("handshakes (native histogram count) = %v, want at least %d", got, made)
	}
	body := a.metrics(t)
	// Prometheus with native histograms takes the native buckets only; the
	// classic ones are in the text exposition.
	if !strings.Contains(body, `tcplens_handshake_duration_seconds_bucket{le="+Inf"}`) {
		t.Errorf("no classic buckets for tcplens_handshake_duration_seconds")
	}
	if err := prom.CheckMetrics(t, []byte(body)); err != nil {
		t.Errorf("promtool check metrics: %v", err)
	}
	// The kernel's BPF statistics (--bpf-stats): the packet program ran
	// at least once per SYN.
	if got := query(t, s, `sum(tcplens_bpf_program_runs_total{program=~"packet/.*"})`); got < float64(made) {
		t.Errorf("packet-path program runs = %v, want at least %d", got, made)
	}
	a.stop(t)
	if att := p.B.Attachments(t); !att.Empty() {
		t.Errorf("after SIGTERM, %s has %s", p.B.Link, att)
	}

	// The event log holds the stream commands' records of the same events.
	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	var sent, segs uint64
	for _, r := range (testnet.Result{Stdout: string(b)}).Records(t) {
		switch {
		case r.Type() == "reset" && r.String(t, "direction") == "sent":
			sent++
		case r.Type() == "retransmit":
			segs += r.Uint(t, "segments")
		}
	}
	if sent != aborted || segs != uint64(info.Total_retrans) {
		t.Errorf("event log: %d sent resets, %d retransmitted segments; want %d and %d", sent, segs, aborted, info.Total_retrans)
	}
}

// tcxLinks counts the tcx links a process holds (its bpf_link descriptors,
// from the kernel's /proc/PID/fdinfo).
func tcxLinks(t *testing.T, pid int) int {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fdinfo", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		s := string(b)
		if strings.Contains(s, "link_type:\ttcx") || strings.Contains(s, "link_type:\txdp") {
			n++
		}
	}
	return n
}

// attachTimeout is how long the agent may take to attach to an interface
// that appeared. One more interface than it has slots loads one more copy
// of the packet path, which under emulation the verifier takes seconds for
// (6.1 under TCG: more than 5).
func attachTimeout() time.Duration {
	if testutil.Emulated() != "" {
		return time.Minute
	}
	return 5 * time.Second
}

// TestAgentFollowsInterfaces starts the agent with --interfaces-regex,
// then makes a veth pair that matches: within a second both ends are
// attached (the kernel's own list of tcx programs on the device, or its
// XDP or TC filters) and their counters appear in /metrics. Deleting the
// pair releases both: their series go and the agent holds no link for
// them any more (its bpf_link descriptors in /proc/PID/fdinfo).
func TestAgentFollowsInterfaces(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	p := testnet.NewPair(t)
	a := startAgent(t, p.B, "--interfaces-regex", "^tlv", "--events", "states", "--netns", "self")
	pid := a.cmd.Process.Pid
	before := tcxLinks(t, pid)

	x, y := "tlvx"+p.B.Link[2:6], "tlvy"+p.B.Link[2:6]
	p.B.Run(t, "ip", "link", "add", x, "type", "veth", "peer", "name", y)
	made := time.Now()
	t.Cleanup(func() { p.B.Command("ip", "link", "del", x).Run() })
	withLinks := true // tcx (6.6+) attaches through bpf_links; netlink TC (6.1) holds none
	wait := attachTimeout()
	for _, name := range []string{x, y} {
		ns := &testnet.NS{Name: p.B.Name, Link: name}
		for deadline := time.Now().Add(wait); ; time.Sleep(50 * time.Millisecond) {
			att := ns.Attachments(t)
			withLinks = att.XDP != "" || len(att.TCXIngress) > 0
			if !att.Empty() {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not attached %v after it was made; the agent said:\n%s", name, time.Since(made).Round(time.Millisecond), a.out)
			}
		}
	}
	if d := time.Since(made); d > time.Second && testutil.Emulated() == "" {
		t.Errorf("attached %v after the veth was made, want within a second", d)
	}
	body := a.metrics(t)
	for _, name := range []string{x, y} {
		if !strings.Contains(body, fmt.Sprintf(`tcplens_packets_total{direction="in",interface=%q}`, name)) {
			t.Errorf("no tcplens_packets_total for %s in /metrics", name)
		}
	}
	// Two interfaces, each with an ingress and an egress link.
	if n := tcxLinks(t, pid); withLinks && n != before+4 {
		t.Errorf("agent holds %d links, want %d", n, before+4)
	}

	p.B.Run(t, "ip", "link", "del", x) // takes its peer along
	if withLinks {
		testnet.WaitFor(t, 5*time.Second, "both released", func() bool { return tcxLinks(t, pid) == before })
	} else {
		t.Log("netlink TC: the kernel removed the filters with the device; only the agent's series are checked")
	}
	testnet.WaitFor(t, 5*time.Second, "their series to go", func() bool {
		body := a.metrics(t)
		return !strings.Contains(body, fmt.Sprintf("interface=%q", x)) && !strings.Contains(body, fmt.Sprintf("interface=%q", y))
	})
	a.stop(t)
}

// TestAgentFloodBounded floods a listener in B with SYNs from 50,000
// spoofed sources (bounded: 100,000 frames, 30 s; B routes its SYN-ACKs to
// A, which does not forward them, so request sockets pile up and SYN-ACKs
// are retransmitted) while the
// agent watches B's veth with --per-remote-port capped at 20: the number
// of series stays within a few of what it was, and the agent's RSS grows
// by less than 32 MiB.
func TestAgentFloodBounded(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	p := testnet.NewPair(t)
	prepareFloodTarget(t, p.B)
	p.B.Run(t, "ip", "route", "add", "198.18.0.0/15", "via", p.A.IPv4.String())
	srv := p.B.Listen(t, testnet.IPv4, 0)
	a := startAgent(t, p.B, "-i", p.B.Link, "--per-remote-port", "--per-remote-port-limit", "20",
		"--port", fmt.Sprint(srv.Addr.Port()), "--netns", "self", "--interval", "200ms")
	pid := a.cmd.Process.Pid
	time.Sleep(500 * time.Millisecond)
	seriesBefore := seriesCount(a.metrics(t))
	rssBefore := rssKiB(t, pid)

	f := flood{syns: 100_000, sources: 50_000, dst: p.B.IPv4.AsSlice(), dport: srv.Addr.Port(), maxTime: 30 * time.Second}
	sent, _, err := f.send(p.A, p.B)
	if err != nil {
		t.Fatal(err)
	}
	waitSettled(t, p.B)
	time.Sleep(1500 * time.Millisecond) // a SYN-ACK retransmission, refreshes
	body := a.metrics(t)
	seriesAfter := seriesCount(body)
	rssAfter := rssKiB(t, pid)
	t.Logf("%d SYNs sent; series %d -> %d; RSS %d -> %d KiB; B holds %d request sockets", sent, seriesBefore, seriesAfter,
		rssBefore, rssAfter, strings.Count(p.B.Run(t, "ss", "-tanH", "state", "syn-recv"), "\n"))
	// New series may only be bounded ones: remote ports up to the cap (20
	// each for resets and retransmissions, plus other), state transitions
	// (at most 12x12), reset and drop reasons (enums).
	if seriesAfter > seriesBefore+60 {
		t.Errorf("series grew from %d to %d under a flood from 50,000 sources", seriesBefore, seriesAfter)
	}
	if rssAfter > rssBefore+32<<10 {
		t.Errorf("RSS grew from %d to %d KiB under the flood", rssBefore, rssAfter)
	}
	if !strings.Contains(body, fmt.Sprintf(`tcplens_syn_total{direction="in",interface=%q} %d`, p.B.Link, sent)) {
		t.Errorf("tcplens_syn_total is not the %d SYNs sent", sent)
	}
	a.stop(t)
}

// TestAgentReload: SIGHUP reads the config file again. An interface the
// new file names is attached; a broken file keeps the running settings
// (the agent goes on, ready).
func TestAgentReload(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	p := testnet.NewPair(t)
	cfg := filepath.Join(t.TempDir(), "agent.yaml")
	write := func(text string) {
		if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("interfaces-regex: \"^none$\"\nevents: [states]\n")
	a := startAgent(t, p.B, "--config", cfg)
	if att := p.B.Attachments(t); !att.Empty() {
		t.Fatalf("%s attached before it was asked for: %s", p.B.Link, att)
	}
	write(fmt.Sprintf("interface: [%s]\nevents: [states]\n", p.B.Link))
	a.cmd.Process.Signal(syscall.SIGHUP)
	testnet.WaitFor(t, attachTimeout(), p.B.Link+" attached after SIGHUP", func() bool { return !p.B.Attachments(t).Empty() })

	write("interface: [\n")
	a.cmd.Process.Signal(syscall.SIGHUP)
	testnet.WaitFor(t, 5*time.Second, "the reload to be refused", func() bool {
		return strings.Contains(a.out.String(), "reload: keeping the running settings")
	})
	if _, err := prom.Fetch(p.B.Name, "http://"+agentListen+"/readyz"); err != nil {
		t.Errorf("/readyz after a bad reload: %v", err)
	}
	if p.B.Attachments(t).Empty() {
		t.Errorf("a bad reload detached %s", p.B.Link)
	}
	a.stop(t)
	if att := p.B.Attachments(t); !att.Empty() {
		t.Errorf("after SIGTERM, %s has %s", p.B.Link, att)
	}
}

// TestAgentTLSBasicAuth: with an exporter-toolkit web config (TLS with the
// test's own certificate, basic auth), a real Prometheus scraping over
// HTTPS with the password gets the metrics (up 1); plain HTTP does not.
func TestAgentTLSBasicAuth(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	p := testnet.NewPair(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeSelfSigned(t, certFile, keyFile)
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	web := filepath.Join(dir, "web.yaml")
	cfg := fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\nbasic_auth_users:\n  prom: %s\n", certFile, keyFile, hash)
	if err := os.WriteFile(web, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	a := startAgentUntil(t, p.B, func(a *agentProc) bool { return strings.Contains(a.out.String(), "serving on") },
		"-i", p.B.Link, "--events", "states", "--netns", "self", "--web-config-file", web)
	if _, err := prom.Fetch(p.B.Name, "http://"+agentListen+"/metrics"); err == nil {
		t.Error("plain HTTP got /metrics from a TLS listener")
	}
	s := prom.Start(t, prom.Options{Targets: []string{agentListen}, NetNS: p.B.Name, HTTPS: true,
		BasicAuthUser: "prom", BasicAuthPassword: "secret"})
	if got := query(t, s, `up`); got != 1 {
		t.Errorf("up = %v over HTTPS with basic auth, want 1", got)
	}
	if got := query(t, s, fmt.Sprintf(`sum(tcplens_interface_attached{interface=%q})`, p.B.Link)); got < 1 {
		t.Errorf("interface_attached = %v, want the metrics", got)
	}
	a.stop(t)
}

// writeSelfSigned writes a certificate for 127.0.0.1 and its key.
func writeSelfSigned(t *testing.T, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tcplens test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
}
