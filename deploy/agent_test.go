package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcplens/tcplens/internal/probe"
	"github.com/tcplens/tcplens/internal/testnet"
	"github.com/tcplens/tcplens/internal/testutil"
	"github.com/tcplens/tcplens/internal/testutil/prom"
)

// TestAgentAsDeployed runs `tcplens agent` the way the deploy files do: as
// uid 0 with exactly AgentCaps (setpriv), with the example config file as
// it ships (every option commented out) and --listen, in a namespace of the
// test's own (`ip netns exec`, a fresh mount namespace, as in a
// container). A real Prometheus scrapes it there. It must become
// ready (/readyz, what the DaemonSet's readiness probe asks), be scraped
// (up == 1) with a body promtool accepts, answer /healthz, live through
// SIGHUP (the unit's ExecReload), and on SIGTERM (systemctl stop, a pod's
// end) exit 0 leaving nothing attached to its interface.
func TestAgentAsDeployed(t *testing.T) {
	testutil.RequirePrivileged(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		testutil.SkipUnlessRequired(t, "setpriv not found (util-linux)")
	}
	agentFlags(t) // skips (fails in CI) when the binary has no agent yet
	bin := testnet.Tcplens(t)
	p := testnet.NewPair(t)

	cfg := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(cfg, read(t, configFile), 0o644); err != nil {
		t.Fatal(err)
	}
	bounding := "-all"
	for _, c := range probe.AgentCaps {
		bounding += ",+" + strings.ToLower(strings.TrimPrefix(c.Name, "CAP_"))
	}
	const listen = "127.0.0.1:9464"
	cmd := p.B.Command("setpriv", "--bounding-set="+bounding, "--inh-caps=-all", "--",
		bin, "agent", "--config", cfg, "-i", p.B.Link, "--listen", listen)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	exited := false
	t.Cleanup(func() {
		if !exited {
			cmd.Process.Kill()
			<-done
		}
	})
	alive := func(what string) {
		t.Helper()
		select {
		case err := <-done:
			exited = true
			t.Fatalf("agent exited (%v) %s:\n%s", err, what, out.String())
		default:
		}
	}

	url := "http://" + listen
	// Loading and attaching every program takes seconds natively, several
	// times that under qemu's software CPU.
	deadline := time.Now().Add(90 * time.Second)
	for {
		alive("before it was ready")
		if _, err := prom.Fetch(p.B.Name, url+"/readyz"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent not ready (/readyz) after 90 s:\n%s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := prom.Fetch(p.B.Name, url+"/healthz"); err != nil {
		t.Errorf("/healthz: %v", err)
	}

	s := prom.Start(t, prom.Options{Targets: []string{listen}, NetNS: p.B.Name})
	if up, err := s.Query("up"); err != nil || up != 1 {
		t.Errorf("up = %v (%v), want 1", up, err)
	}
	if n, err := s.Query("scrape_samples_scraped"); err != nil || n < 1 {
		t.Errorf("scrape_samples_scraped = %v (%v), want some", n, err)
	}
	body, err := prom.Fetch(p.B.Name, url+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if err := prom.CheckMetrics(t, body); err != nil {
		t.Errorf("/metrics: %v", err)
	}

	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	s.Sync(t) // scraped again after the reload
	alive("after SIGHUP")
	if _, err := prom.Fetch(p.B.Name, url+"/readyz"); err != nil {
		t.Errorf("/readyz after SIGHUP: %v", err)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err = <-done:
		exited = true
	case <-time.After(30 * time.Second):
		t.Fatalf("agent still running 30 s after SIGTERM:\n%s", out.String())
	}
	if err != nil {
		t.Errorf("agent after SIGTERM: %v, want exit 0:\n%s", err, out.String())
	}
	if a := p.B.Attachments(t); !a.Empty() {
		t.Errorf("after SIGTERM, %s has %s", p.B.Link, a)
	}
}
