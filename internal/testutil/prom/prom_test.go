package prom

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tcplens/tcplens/internal/testutil"
)

// exporter is a small client_golang server whose values the test sets: the
// oracle for what Prometheus must answer.
type exporter struct {
	requests *prometheus.CounterVec
	temp     prometheus.Gauge
	latency  prometheus.Histogram // native and classic buckets both
	addr     string
}

func newExporter(t *testing.T, netns string) *exporter {
	t.Helper()
	reg := prometheus.NewRegistry()
	e := &exporter{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "test_requests_total", Help: "Requests by code."}, []string{"code"}),
		temp:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "test_temperature_celsius", Help: "A gauge."}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "test_latency_seconds", Help: "A histogram.",
			Buckets: []float64{0.25, 1}, NativeHistogramBucketFactor: 1.1}),
	}
	reg.MustRegister(e.requests, e.temp, e.latency)
	var l net.Listener
	if err := inNetNS(netns, func() error {
		var err error
		l, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	}); err != nil {
		t.Fatalf("listen: %v", err)
	}
	srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	e.addr = l.Addr().String()
	return e
}

func (e *exporter) set() {
	e.requests.WithLabelValues("200").Add(7)
	e.requests.WithLabelValues("500").Add(3)
	e.temp.Set(21.5)
	for _, v := range []float64{0.125, 0.25, 0.5} {
		e.latency.Observe(v)
	}
}

// checkQueries asks Prometheus about the exporter's values, then changes
// them and asks again after a scrape that saw the change.
func checkQueries(t *testing.T, s *Server, e *exporter, native bool) {
	t.Helper()
	want := func(expr string, w float64) {
		t.Helper()
		got, err := s.Query(expr)
		if err != nil {
			t.Fatal(err)
		}
		if got != w {
			t.Errorf("%s = %v, want %v", expr, got, w)
		}
	}
	want("sum(test_requests_total)", 10)
	want(`test_requests_total{code="500"}`, 3)
	want("test_temperature_celsius", 21.5)
	want("scalar(test_temperature_celsius) * 2", 43) // a scalar result
	if native {
		// With the feature, Prometheus 2.42 keeps the native form only.
		want("histogram_count(test_latency_seconds)", 3)
		want("histogram_sum(test_latency_seconds)", 0.875)
	} else {
		want("test_latency_seconds_count", 3)
		want(`test_latency_seconds_bucket{le="0.25"}`, 2)
	}

	v, err := s.Vector("test_requests_total")
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != 2 || v[0].Labels["code"] != "200" || v[0].Value != 7 || v[1].Labels["code"] != "500" || v[1].Value != 3 {
		t.Errorf("test_requests_total = %+v, want code 200: 7 and code 500: 3", v)
	}
	for _, smp := range v {
		if smp.Labels["instance"] != e.addr || smp.Labels["job"] != "test" {
			t.Errorf("sample labels %v: want instance %s, job test", smp.Labels, e.addr)
		}
	}

	if _, err := s.Query("test_requests_total"); err == nil {
		t.Error("Query of a two-sample vector: no error")
	}
	if _, err := s.Query("test_no_such_metric"); err == nil {
		t.Error("Query of a missing metric: no error")
	}
	if _, err := s.Query("sum("); err == nil {
		t.Error("Query of a bad expression: no error")
	}

	e.requests.WithLabelValues("200").Add(5)
	e.temp.Set(-4)
	s.Sync(t)
	want("sum(test_requests_total)", 15)
	want("test_temperature_celsius", -4)

	// Series in the last scrape, as Prometheus counts them: 2 requests, 1
	// gauge, and the histogram (classic: 3 buckets, sum, count; native: 1).
	wantSeries := 8.0
	if native {
		wantSeries = 4
	}
	want("scrape_samples_scraped", wantSeries)

	// The body Prometheus scraped, fetched where the target is, passes
	// promtool.
	body, err := Fetch(s.opts.NetNS, "http://"+e.addr+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), `test_requests_total{code="200"} 12`) {
		t.Errorf("fetched /metrics lacks test_requests_total{code=\"200\"} 12:\n%s", body)
	}
	if err := CheckMetrics(t, body); err != nil {
		t.Error(err)
	}

	ts, err := s.Targets()
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 1 || ts[0].Health != "up" || !strings.Contains(ts[0].ScrapeURL, e.addr) {
		t.Errorf("targets %+v, want one, up, at %s", ts, e.addr)
	}
}

func TestQueryExporter(t *testing.T) {
	t.Parallel() // most of Start is Prometheus's own 5 s wait
	e := newExporter(t, "")
	e.set()
	s := Start(t, Options{Targets: []string{e.addr}})
	checkQueries(t, s, e, false)
}

// TestQueryExporterInNamespace runs both ends inside a network namespace
// of the test's own: the exporter's address exists only there, so a
// successful scrape shows Prometheus runs there too. It scrapes native
// histograms.
func TestQueryExporterInNamespace(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	if _, err := exec.LookPath("ip"); err != nil {
		testutil.SkipUnlessRequired(t, "ip (iproute2) not found")
	}
	b := make([]byte, 4)
	rand.Read(b)
	ns := "tcplens-prom-" + hex.EncodeToString(b)
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", ns, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
	})
	if out, err := exec.Command("ip", "-n", ns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up in %s: %v: %s", ns, err, out)
	}
	e := newExporter(t, ns)
	e.set()
	s := Start(t, Options{Targets: []string{e.addr}, NetNS: ns, Features: []string{"native-histograms"}})
	checkQueries(t, s, e, true)
}

func TestConfig(t *testing.T) {
	got := string(config(Options{Targets: []string{"10.0.0.1:9464", "[fd00::1]:9464"}, MetricsPath: "/m",
		HTTPS: true, BasicAuthUser: "u", BasicAuthPassword: "p"}))
	for _, want := range []string{"scrape_interval: 1s", `metrics_path: "/m"`, "scheme: https", "insecure_skip_verify: true",
		`username: "u"`, `password: "p"`, `- "10.0.0.1:9464"`, `- "[fd00::1]:9464"`} {
		if !strings.Contains(got, want) {
			t.Errorf("config lacks %q:\n%s", want, got)
		}
	}
}

// TestCheckMetrics: promtool's own rules are the oracle (a counter must end
// in _total; a line must parse).
func TestCheckMetrics(t *testing.T) {
	good := "# HELP test_requests_total Requests.\n# TYPE test_requests_total counter\ntest_requests_total{code=\"200\"} 7\n"
	if err := CheckMetrics(t, []byte(good)); err != nil {
		t.Errorf("good body: %v", err)
	}
	noTotal := "# HELP test_requests Requests.\n# TYPE test_requests counter\ntest_requests 7\n"
	if err := CheckMetrics(t, []byte(noTotal)); err == nil || !strings.Contains(err.Error(), "_total") {
		t.Errorf("counter without _total: %v, want a complaint about _total", err)
	}
	if err := CheckMetrics(t, []byte("test_requests_total{code=\"200\" 7\n")); err == nil {
		t.Error("unparsable body: no error")
	}
}
