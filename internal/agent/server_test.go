package agent

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// serve starts the server on a free loopback port.
func serve(t *testing.T, ready Readiness, webConfig string, pprof bool) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	reg := Registry(NewMetrics(&mu, 0), "v0", "abc")
	s := Serve(l, reg, ready, webConfig, pprof, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(func() { s.Shutdown() })
	return "http://" + l.Addr().String()
}

func get(t *testing.T, url, user, pass string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestEndpoints(t *testing.T) {
	why := []string{"starting"}
	var mu sync.Mutex
	url := serve(t, func() []string { mu.Lock(); defer mu.Unlock(); return why }, "", false)
	if code, _ := get(t, url+"/healthz", "", ""); code != 200 {
		t.Errorf("/healthz %d", code)
	}
	if code, body := get(t, url+"/readyz", "", ""); code != 503 || !strings.Contains(body, "starting") {
		t.Errorf("/readyz while starting: %d %q", code, body)
	}
	mu.Lock()
	why = nil
	mu.Unlock()
	if code, _ := get(t, url+"/readyz", "", ""); code != 200 {
		t.Errorf("/readyz when ready: %d", code)
	}
	if code, body := get(t, url+"/metrics", "", ""); code != 200 || !strings.Contains(body, "tcplens_build_info") {
		t.Errorf("/metrics: %d", code)
	}
	if code, _ := get(t, url+"/debug/pprof/", "", ""); code != 404 {
		t.Errorf("/debug/pprof/ without --pprof: %d, want 404", code)
	}
	url = serve(t, func() []string { return nil }, "", true)
	if code, _ := get(t, url+"/debug/pprof/", "", ""); code != 200 {
		t.Errorf("/debug/pprof/ with --pprof: %d, want 200", code)
	}
}

// TestWebConfigBasicAuth: exporter-toolkit's web config guards every
// endpoint with basic auth.
func TestWebConfigBasicAuth(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "web.yaml")
	if err := os.WriteFile(cfg, []byte("basic_auth_users:\n  prom: "+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := ValidateWebConfig(cfg); err != nil {
		t.Fatal(err)
	}
	url := serve(t, func() []string { return nil }, cfg, false)
	if code, _ := get(t, url+"/metrics", "", ""); code != 401 {
		t.Errorf("/metrics without credentials: %d, want 401", code)
	}
	if code, _ := get(t, url+"/metrics", "prom", "wrong"); code != 401 {
		t.Errorf("/metrics with a wrong password: %d, want 401", code)
	}
	if code, _ := get(t, url+"/metrics", "prom", "secret"); code != 200 {
		t.Errorf("/metrics with credentials: %d, want 200", code)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("tls_server_config:\n  cert_file: /nonexistent\n"), 0o600)
	if err := ValidateWebConfig(bad); err == nil {
		t.Error("a web config naming a missing certificate passed validation")
	}
}
