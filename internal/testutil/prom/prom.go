// Package prom runs a real Prometheus server for tests: the oracle that
// tcplens's /metrics is what Prometheus itself scrapes, parses and answers
// queries about. Start writes a config that scrapes the given targets every
// second, runs Debian's prometheus binary (optionally inside a named network
// namespace through `ip netns exec`), waits until it is ready and has
// scraped every target once, and stops it when the test ends. Query and
// Vector ask its HTTP API. CheckMetrics runs `promtool check metrics`.
//
// Typical use, with the target in a test's namespace:
//
//	s := prom.Start(t, prom.Options{Targets: []string{"127.0.0.1:9464"}, NetNS: ns.Name})
//	... make known traffic ...
//	s.Sync(t) // a scrape that began after the traffic has landed
//	syns, err := s.Query(`sum(tcplens_syn_total)`)
//	series, err := s.Query(`scrape_samples_scraped`) // series in the last scrape
//	body, err := prom.Fetch(ns.Name, "http://127.0.0.1:9464/metrics")
//	err = prom.CheckMetrics(t, body)
//
// Nothing here is specific to tcplens: the package's own test scrapes a
// small client_golang server with counters it set itself.
package prom

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tcplens/tcplens/internal/diag"
	"github.com/tcplens/tcplens/internal/testutil"
)

// Binaries: Debian's prometheus package installs both here.
const (
	binary   = "prometheus"
	promtool = "promtool"
)

// Bounds on every wait. Under qemu's software CPU (TCPLENS_EMULATION)
// Prometheus takes several times longer to start than natively (~1 s).
const (
	startTimeout  = 90 * time.Second
	scrapeTimeout = 30 * time.Second
	stopTimeout   = 15 * time.Second
)

// Options says what the server scrapes and where it runs.
type Options struct {
	// Targets are host:port addresses scraped every second, as seen from
	// NetNS.
	Targets []string
	// MetricsPath is the path scraped; default /metrics.
	MetricsPath string
	// NetNS is a named network namespace (`ip netns list`) to run the
	// server in; "" runs it in the test's own. The server listens on that
	// namespace's loopback, which must be up (testnet's pairs have it up),
	// and the package's HTTP client dials there.
	NetNS string
	// HTTPS scrapes with TLS, not verifying the certificate (a test's own).
	HTTPS bool
	// BasicAuthUser and BasicAuthPassword, when set, are sent with every
	// scrape (exporter-toolkit's web config).
	BasicAuthUser, BasicAuthPassword string
	// Features are passed as --enable-feature (e.g. "native-histograms";
	// with it Prometheus 2.42 scrapes the protobuf format and keeps a
	// histogram's native form only).
	Features []string
}

// Server is one running Prometheus.
type Server struct {
	// URL is its HTTP API base (http://127.0.0.1:PORT) inside Options.NetNS.
	URL string

	opts   Options
	cmd    *exec.Cmd
	client *http.Client
	log    *syncBuffer
	done   chan struct{}
	err    error // the process's exit, once done is closed
}

// Start runs Prometheus for the test and returns once it has scraped every
// target successfully at least once. It skips (or fails, under
// TCPLENS_REQUIRE_PRIVILEGED=1) when the prometheus binary is missing, and
// fails when it cannot start or a target stays down. The process is
// stopped (by its PID) and its directory removed when the test ends.
//
// Prometheus applies its targets about 5 s after it starts (its discovery
// and scrape managers batch updates every 5 s, not configurable in 2.42),
// so Start takes ~6 s: start one server per test and Sync it after each
// step rather than starting one per step.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin, err := exec.LookPath(binary)
	if err != nil {
		testutil.SkipUnlessRequired(t, "prometheus not found (apt-get install prometheus): "+err.Error())
	}
	if len(opts.Targets) == 0 {
		t.Fatal("prom: no targets to scrape")
	}
	if opts.MetricsPath == "" {
		opts.MetricsPath = "/metrics"
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, config(opts), 0o600); err != nil {
		t.Fatalf("prom: write config: %v", err)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	if opts.NetNS != "" {
		client.Transport = &http.Transport{DialContext: dialIn(opts.NetNS), DisableKeepAlives: true}
	}

	// A free port is picked by binding one and letting go of it; another
	// process may take it meanwhile, so a start that fails is tried again.
	var s *Server
	for attempt := 1; ; attempt++ {
		port, err := freePort(opts.NetNS)
		if err != nil {
			t.Fatalf("prom: find a free port: %v", err)
		}
		s, err = start(bin, dir, cfg, port, opts, client)
		if err != nil {
			t.Fatalf("prom: %v", err)
		}
		this := s
		t.Cleanup(func() { this.stop(t) })
		err = s.waitReady()
		if err == nil {
			break
		}
		if attempt == 3 || !strings.Contains(s.log.String(), "address already in use") {
			t.Fatalf("prom: %v\nprometheus log:\n%s", err, s.log.tail(30))
		}
	}
	if err := s.waitScraped(time.Time{}); err != nil {
		t.Fatalf("prom: %v\nprometheus log:\n%s", err, s.log.tail(30))
	}
	return s
}

// config is the server's prometheus.yml: one job, every target scraped
// every second with a one-second timeout.
func config(opts Options) []byte {
	var b strings.Builder
	b.WriteString("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n")
	b.WriteString("scrape_configs:\n  - job_name: test\n")
	fmt.Fprintf(&b, "    metrics_path: %q\n", opts.MetricsPath)
	if opts.HTTPS {
		b.WriteString("    scheme: https\n    tls_config:\n      insecure_skip_verify: true\n")
	}
	if opts.BasicAuthUser != "" {
		fmt.Fprintf(&b, "    basic_auth:\n      username: %q\n      password: %q\n", opts.BasicAuthUser, opts.BasicAuthPassword)
	}
	b.WriteString("    static_configs:\n      - targets:\n")
	for _, tg := range opts.Targets {
		fmt.Fprintf(&b, "          - %q\n", tg)
	}
	return []byte(b.String())
}

func start(bin, dir, cfg string, port int, opts Options, client *http.Client) (*Server, error) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	args := []string{
		"--config.file=" + cfg,
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + addr,
		"--log.level=warn",
	}
	for _, f := range opts.Features {
		args = append(args, "--enable-feature="+f)
	}
	var cmd *exec.Cmd
	if opts.NetNS != "" {
		// ip execs the program, so the command's PID is Prometheus's own.
		cmd = exec.Command("ip", append([]string{"netns", "exec", opts.NetNS, bin}, args...)...)
	} else {
		cmd = exec.Command(bin, args...)
	}
	cmd.Dir = dir
	s := &Server{URL: "http://" + addr, opts: opts, cmd: cmd, client: client, log: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", strings.Join(cmd.Args, " "), err)
	}
	go func() {
		s.err = cmd.Wait()
		close(s.done)
	}()
	return s, nil
}

// stop ends this server's process by its PID (SIGTERM, then SIGKILL) and
// waits for it; t.TempDir removes its directory afterwards.
func (s *Server) stop(t testing.TB) {
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(stopTimeout):
		t.Logf("prom: prometheus (pid %d) ignored SIGTERM for %s; killing it", s.cmd.Process.Pid, stopTimeout)
		s.cmd.Process.Kill()
		<-s.done
	}
}

func (s *Server) exited() error {
	select {
	case <-s.done:
		return fmt.Errorf("prometheus exited: %v", s.err)
	default:
		return nil
	}
}

// waitReady polls /-/ready until Prometheus answers 200.
func (s *Server) waitReady() error {
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		if err := s.exited(); err != nil {
			return err
		}
		resp, err := s.client.Get(s.URL + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("not ready at %s after %s", s.URL, startTimeout)
}

// Target is one scrape target as /api/v1/targets reports it.
type Target struct {
	ScrapeURL  string    `json:"scrapeUrl"`
	Health     string    `json:"health"`
	LastError  string    `json:"lastError"`
	LastScrape time.Time `json:"lastScrape"`
}

// Targets asks the server for its active targets.
func (s *Server) Targets() ([]Target, error) {
	var data struct {
		ActiveTargets []Target `json:"activeTargets"`
	}
	if err := s.api("/api/v1/targets?state=active", &data); err != nil {
		return nil, err
	}
	return data.ActiveTargets, nil
}

// waitScraped waits until what every target exposed at since (or later)
// can be queried. A target's health turns "up" before Prometheus commits
// that scrape's samples (6.1 under qemu queried in between and found
// none), but a target's scrapes run one after another: once a scrape that
// began after a successful one is up too, the earlier one is committed.
func (s *Server) waitScraped(since time.Time) error {
	last, err := s.waitTargets(since)
	if err != nil {
		return err
	}
	_, err = s.waitTargets(last)
	return err
}

// waitTargets waits until every target's last scrape started after since
// and succeeded, and returns the latest of those scrapes' start.
func (s *Server) waitTargets(since time.Time) (time.Time, error) {
	deadline := time.Now().Add(scrapeTimeout)
	var last []Target
	for time.Now().Before(deadline) {
		if err := s.exited(); err != nil {
			return time.Time{}, err
		}
		ts, err := s.Targets()
		if err == nil && len(ts) == len(s.opts.Targets) {
			last = ts
			ok := true
			var latest time.Time
			for _, tg := range ts {
				ok = ok && tg.Health == "up" && tg.LastScrape.After(since)
				if tg.LastScrape.After(latest) {
					latest = tg.LastScrape
				}
			}
			if ok {
				return latest, nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	var why []string
	for _, tg := range last {
		why = append(why, fmt.Sprintf("%s: %s %s (last scrape %s)", tg.ScrapeURL, tg.Health, tg.LastError, tg.LastScrape.Format(time.RFC3339Nano)))
	}
	after := "at all"
	if !since.IsZero() {
		after = "after " + since.Format(time.RFC3339Nano)
	}
	return time.Time{}, fmt.Errorf("targets %v not scraped successfully %s within %s: %s",
		s.opts.Targets, after, scrapeTimeout, strings.Join(why, "; "))
}

// Sync waits until every target has been scraped successfully by a scrape
// that began after Sync was called, and that scrape is committed: what
// the test did before is then in Prometheus.
func (s *Server) Sync(t testing.TB) {
	t.Helper()
	if err := s.waitScraped(time.Now()); err != nil {
		t.Fatalf("prom: %v\nprometheus log:\n%s", err, s.log.tail(30))
	}
}

// Sample is one element of an instant vector.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// Vector evaluates expr now and returns its samples, sorted by labels. A
// scalar result is one sample without labels.
func (s *Server) Vector(expr string) ([]Sample, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := s.api("/api/v1/query?query="+url.QueryEscape(expr), &data); err != nil {
		return nil, fmt.Errorf("query %q: %w", expr, err)
	}
	switch data.ResultType {
	case "scalar":
		var v [2]any
		if err := json.Unmarshal(data.Result, &v); err != nil {
			return nil, fmt.Errorf("query %q: scalar: %w", expr, err)
		}
		f, err := value(v[1])
		if err != nil {
			return nil, fmt.Errorf("query %q: %w", expr, err)
		}
		return []Sample{{Labels: map[string]string{}, Value: f}}, nil
	case "vector":
		var rows []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(data.Result, &rows); err != nil {
			return nil, fmt.Errorf("query %q: vector: %w", expr, err)
		}
		out := make([]Sample, 0, len(rows))
		for _, r := range rows {
			f, err := value(r.Value[1])
			if err != nil {
				return nil, fmt.Errorf("query %q: %w", expr, err)
			}
			out = append(out, Sample{Labels: r.Metric, Value: f})
		}
		sort.Slice(out, func(i, j int) bool { return labelString(out[i].Labels) < labelString(out[j].Labels) })
		return out, nil
	}
	return nil, fmt.Errorf("query %q: result type %q, want vector or scalar", expr, data.ResultType)
}

// Query evaluates expr now and returns its one value; no sample, or more
// than one, is an error (aggregate with sum() when labels may split it).
func (s *Server) Query(expr string) (float64, error) {
	v, err := s.Vector(expr)
	if err != nil {
		return 0, err
	}
	if len(v) != 1 {
		var got []string
		for _, smp := range v {
			got = append(got, labelString(smp.Labels))
		}
		return 0, fmt.Errorf("query %q: %d samples, want 1: %v", expr, len(v), got)
	}
	return v[0].Value, nil
}

// value parses a sample value: Prometheus sends it as a string ("1",
// "NaN", "+Inf").
func value(v any) (float64, error) {
	str, ok := v.(string)
	if !ok {
		return 0, fmt.Errorf("sample value %v is not a string", v)
	}
	f, err := strconv.ParseFloat(str, 64)
	if err != nil {
		return 0, fmt.Errorf("sample value %q: %w", str, err)
	}
	return f, nil
}

func labelString(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", k, l[k])
	}
	b.WriteByte('}')
	return b.String()
}

// api GETs path and decodes the "data" of a successful answer into out.
func (s *Server) api(path string, out any) error {
	resp, err := s.client.Get(s.URL + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var env struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("HTTP %d, not JSON: %.200s", resp.StatusCode, body)
	}
	if env.Status != "success" {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, env.Error)
	}
	return json.Unmarshal(env.Data, out)
}

// Log is what Prometheus wrote so far (warnings and errors only).
func (s *Server) Log() string { return s.log.String() }

// CheckMetrics runs `promtool check metrics` on an exposition-format body
// and returns what it found wrong (nil when nothing). It skips, or fails
// under TCPLENS_REQUIRE_PRIVILEGED=1, when promtool is missing.
func CheckMetrics(t testing.TB, body []byte) error {
	t.Helper()
	bin, err := exec.LookPath(promtool)
	if err != nil {
		testutil.SkipUnlessRequired(t, "promtool not found (apt-get install prometheus): "+err.Error())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &exit) && ctx.Err() == nil:
		// promtool exits 1 on a parse error and 3 on lint problems.
		return fmt.Errorf("promtool check metrics (exit %d): %s", exit.ExitCode(), strings.TrimSpace(string(out)))
	default:
		t.Fatalf("prom: run promtool: %v: %s", err, out)
		return nil
	}
}

// Fetch GETs url from inside the named network namespace ("" = ours)
// and returns the body of a 200 answer: for example a target's /metrics,
// to hand to CheckMetrics.
func Fetch(netns, url string) ([]byte, error) {
	client := &http.Client{Timeout: 10 * time.Second}
	if netns != "" {
		client.Transport = &http.Transport{DialContext: dialIn(netns), DisableKeepAlives: true}
	}
	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("GET %s: HTTP %d: %.200s", url, resp.StatusCode, body)
	}
	return body, nil
}

// freePort finds a TCP port free on 127.0.0.1 in netns ("" = ours).
func freePort(netns string) (int, error) {
	var port int
	err := inNetNS(netns, func() error {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		port = l.Addr().(*net.TCPAddr).Port
		return l.Close()
	})
	return port, err
}

// dialIn returns a DialContext that makes its sockets in the named
// namespace: a socket stays in the namespace it was made in.
func dialIn(netns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := inNetNS(netns, func() error {
			var err error
			c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}

// inNetNS runs fn on an OS thread switched into the named network
// namespace, and back; "" runs fn as it is.
func inNetNS(name string, fn func() error) error {
	if name == "" {
		return fn()
	}
	if err := diag.InNamespace(filepath.Join("/run/netns", name), fn); err != nil {
		return fmt.Errorf("network namespace %s: %w", name, err)
	}
	return nil
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// tail is the last n lines written.
func (b *syncBuffer) tail(n int) string {
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
