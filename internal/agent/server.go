package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
)

// Registry is the agent's metrics with the process's own (CPU, memory,
// file descriptors), the Go runtime's and the build info.
func Registry(m *Metrics, ver, commit string) *prometheus.Registry {
	version.Version, version.Revision = ver, commit
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		m,
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{Namespace: "tcplens"}),
		collectors.NewGoCollector(),
		versioncollector.NewCollector("tcplens"),
	)
	return reg
}

// Server serves /metrics, /healthz, /readyz and, when asked, /debug/pprof.
type Server struct {
	srv  *http.Server
	done chan error
}

// Readiness says what keeps the agent from being ready (empty: ready); nil
// while it starts.
type Readiness func() []string

// Serve serves on l until Shutdown. webConfig is an exporter-toolkit web
// config file (TLS, basic auth), "" for plain HTTP.
func Serve(l net.Listener, reg *prometheus.Registry, ready Readiness, webConfig string, withPprof bool, logger *slog.Logger) *Server {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: true,
		Registry:          reg, // promhttp_metric_handler_errors_total
	}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		var why []string
		if ready == nil {
			why = []string{"starting"}
		} else {
			why = ready()
		}
		if len(why) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "not ready: "+strings.Join(why, "; "))
			return
		}
		fmt.Fprintln(w, "ready")
	})
	if withPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "tcplens agent: /metrics /healthz /readyz")
	})
	s := &Server{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, done: make(chan error, 1)}
	flags := &web.FlagConfig{WebConfigFile: &webConfig}
	go func() {
		err := web.Serve(l, s.srv, flags, logger)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.done <- err
	}()
	return s
}

// Done delivers the server's error if it stops on its own.
func (s *Server) Done() <-chan error { return s.done }

// Shutdown stops the server, letting scrapes in progress finish.
func (s *Server) Shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}

// ValidateWebConfig checks an exporter-toolkit web config file.
func ValidateWebConfig(path string) error {
	if path == "" {
		return nil
	}
	return web.Validate(path)
}
