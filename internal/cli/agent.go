package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/tcplens/tcplens/internal/agent"
	"github.com/tcplens/tcplens/internal/conn"
	"github.com/tcplens/tcplens/internal/live"
	"github.com/tcplens/tcplens/internal/probe"
)

func init() {
	register("agent", "node agent: Prometheus metrics of the packet path, the socket path and every connection", runAgent)
}

// agentFlags are the agent's settings; each long name is also a key of
// the --config file.
type agentFlags struct {
	interfaces    []string
	regex         string
	hook          string
	direction     string
	listen        string
	webConfig     string
	sources       []string
	interval      time.Duration
	netns         string
	perRemotePort bool
	portLimit     int
	bpfStats      bool
	pprof         bool
	log           []string
	logFile       string
	logMaxBytes   int64
	config        string
	guardRules    string
	guardDryRun   bool
	guardForce    bool
	sock          sockFlags
}

func (f *agentFlags) register(fs *pflag.FlagSet) {
	fs.StringArrayVarP(&f.interfaces, "interface", "i", nil, "watch packets on interface `NAME` whenever it exists (repeatable; default: the interface of the default route unless --interfaces-regex is given)")
	fs.StringVar(&f.regex, "interfaces-regex", "", "also watch every interface whose name matches `REGEX`, now and when it appears later; released when it goes")
	fs.StringVar(&f.hook, "hook", "auto", "attach the packet path with `HOOK`: auto, xdp, tc (tcx, else netlink TC), tcx or tc-netlink (as flags and syn)")
	fs.StringVar(&f.direction, "direction", "both", "watch packets received (in), sent (out) or both, counted apart (a direction label); egress always attaches on TC")
	fs.StringVar(&f.listen, "listen", "127.0.0.1:9464", "serve /metrics, /healthz and /readyz on `ADDR`")
	fs.StringVar(&f.webConfig, "web-config-file", "", "Prometheus exporter-toolkit web config `FILE` (TLS, basic auth)")
	fs.StringSliceVar(&f.sources, "events", live.Sources, "socket-path `SOURCES` to attach: retrans, resets, states, drops")
	fs.DurationVar(&f.interval, "interval", 5*time.Second, "take a snapshot of every socket (connection gauges, RTT) every `DURATION`")
	fs.StringVar(&f.netns, "netns", "all", "read the sockets of all network namespaces for the connection gauges, or of self (the agent's own) only")
	fs.BoolVar(&f.perRemotePort, "per-remote-port", false, "label retransmission and reset counters with the remote port, capped at --per-remote-port-limit ports (the rest fold into other)")
	fs.IntVar(&f.portLimit, "per-remote-port-limit", 100, "most remote ports with a series of their own (`N`)")
	fs.BoolVar(&f.bpfStats, "bpf-stats", false, "turn on the kernel's BPF run-time statistics while running (per-program runs and run time)")
	fs.BoolVar(&f.pprof, "pprof", false, "serve /debug/pprof on the same listener")
	fs.StringSliceVar(&f.log, "log", nil, "write a JSON-lines event log of these `STREAMS` (some of retrans, resets, states, drops), in the stream commands' records")
	fs.StringVar(&f.logFile, "log-file", "", "write the event log to `PATH` instead of stdout, rotated by size")
	fs.Int64Var(&f.logMaxBytes, "log-max-bytes", 100<<20, "rotate the event log file past `BYTES` (the previous one is kept as PATH.1)")
	fs.StringVar(&f.guardRules, "guard-rules", "", "run guard's drop policy on every watched interface, with the rules in YAML `FILE` (the format of the rules file of tcplens guard); SIGHUP reloads it. A deny policy can lock you out of this host: rules that would cut your own SSH connection need --guard-force")
	fs.BoolVar(&f.guardDryRun, "guard-dry-run", false, "with --guard-rules: count what the rules would drop, drop nothing")
	fs.BoolVar(&f.guardForce, "guard-force", false, "with --guard-rules: apply rules even if they would block your own SSH connection (SSH_CONNECTION, established sockets to port 22)")
	f.sock.register(fs)
	fs.StringVar(&f.config, "config", "", "read settings from YAML `FILE` (keys are these flags' long names); flags given here win; SIGHUP reads it again")
}

// parseAgentFlags parses args, then the config file for every flag not
// given on the command line.
func parseAgentFlags(env Env, args []string) (*agentFlags, agent.Options, error) {
	f := &agentFlags{}
	fs := pflag.NewFlagSet("agent", pflag.ContinueOnError)
	f.register(fs)
	if err := parseFlags(fs, env, args); err != nil {
		return nil, agent.Options{}, err
	}
	if f.config != "" {
		settings, err := agent.ReadConfig(f.config)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) {
				return nil, agent.Options{}, usageError{err.Error()}
			}
			return nil, agent.Options{}, usageError{err.Error()}
		}
		for _, s := range settings {
			fl := fs.Lookup(s.Key)
			if fl == nil || s.Key == "config" {
				return nil, agent.Options{}, usageError{(&agent.ConfigError{Path: f.config, S: s, Err: agent.ErrUnknownKey}).Error()}
			}
			if fl.Changed {
				continue // the command line wins
			}
			if sv, ok := fl.Value.(pflag.SliceValue); ok {
				if err := sv.Replace(s.Values); err != nil {
					return nil, agent.Options{}, usageError{(&agent.ConfigError{Path: f.config, S: s, Err: err}).Error()}
				}
				continue
			}
			if len(s.Values) != 1 {
				return nil, agent.Options{}, usageError{(&agent.ConfigError{Path: f.config, S: s, Err: errors.New("want one value, not a list")}).Error()}
			}
			if err := fl.Value.Set(s.Values[0]); err != nil {
				return nil, agent.Options{}, usageError{(&agent.ConfigError{Path: f.config, S: s, Err: err}).Error()}
			}
		}
	}
	o, err := f.options()
	return f, o, err
}

// options checks the settings.
func (f *agentFlags) options() (agent.Options, error) {
	o := agent.Options{Interfaces: f.interfaces, Listen: f.listen, WebConfigFile: f.webConfig,
		Interval: f.interval, Pprof: f.pprof, BPFStats: f.bpfStats, Sources: f.sources}
	var err error
	if o.Filter, err = f.sock.filter(); err != nil {
		return o, err
	}
	kf := o.Filter
	o.ConnFilter = conn.Filter{Ports: kf.Ports, LPorts: kf.LPorts, RPorts: kf.RPorts, Hosts: kf.Hosts, Family: kf.Family}
	if o.Hook, err = resolveHook(f.hook); err != nil {
		return o, err
	}
	if o.Direction, err = probe.ParseDirection(f.direction); err != nil {
		return o, usagef("--direction: %v", err)
	}
	if f.regex != "" {
		if o.InterfacesRegex, err = regexp.Compile(f.regex); err != nil {
			return o, usagef("--interfaces-regex %q: %v", f.regex, err)
		}
	}
	if len(o.Interfaces) == 0 && o.InterfacesRegex == nil {
		name, err := probe.DefaultRouteInterface()
		if err != nil {
			return o, usagef("no -i and no --interfaces-regex, and no default route to choose an interface by: %v", err)
		}
		o.Interfaces = []string{name}
	}
	for _, s := range f.sources {
		if !slices.Contains(live.Sources, s) {
			return o, usagef("--events: unknown source %q: want some of %s", s, strings.Join(live.Sources, ","))
		}
	}
	for _, s := range f.log {
		if !slices.Contains(live.Sources, s) {
			return o, usagef("--log: unknown stream %q: want some of %s", s, strings.Join(live.Sources, ","))
		}
		if !slices.Contains(f.sources, s) {
			return o, usagef("--log %s: that source is not attached (--events)", s)
		}
	}
	if f.logMaxBytes < 4096 {
		return o, usagef("--log-max-bytes %d: at least 4096", f.logMaxBytes)
	}
	if f.interval < 100*time.Millisecond {
		return o, usagef("--interval %s: at least 100ms", f.interval)
	}
	switch f.netns {
	case "all":
	case "self":
		o.SelfNetNSOnly = true
	default:
		return o, usagef("--netns %q: want all or self", f.netns)
	}
	if f.perRemotePort {
		if f.portLimit < 1 || f.portLimit > 10000 {
			return o, usagef("--per-remote-port-limit %d: want 1 to 10000", f.portLimit)
		}
		o.PerRemotePort = f.portLimit
	}
	if err := agent.ValidateWebConfig(f.webConfig); err != nil {
		return o, usagef("--web-config-file %s: %v", f.webConfig, err)
	}
	if f.guardRules == "" && (f.guardDryRun || f.guardForce) {
		return o, usagef("--guard-dry-run and --guard-force need --guard-rules")
	}
	return o, nil
}

// guard reads the --guard-rules file and applies --guard-dry-run and the
// lockout check (guard's own). Nil rules: no guard stage. Errors name the
// file's line.
func (f *agentFlags) guard() (*probe.GuardRules, error) {
	if f.guardRules == "" {
		return nil, nil
	}
	rules, err := loadGuardRules(f.guardRules)
	if err != nil {
		return nil, fmt.Errorf("--guard-rules: %w", err)
	}
	if f.guardDryRun {
		rules.DryRun = true
	}
	if why := lockout(rules, sshPeers()); why != "" && !f.guardForce {
		return nil, fmt.Errorf("--guard-rules %s: %s: this would lock you out; add an allow for it, or --guard-force", f.guardRules, why)
	}
	return &rules, nil
}

func runAgent(ctx context.Context, env Env, args []string) error {
	f, opts, err := parseAgentFlags(env, args)
	if err != nil {
		return err
	}
	if opts.Guard, err = f.guard(); err != nil {
		return usageError{err.Error()}
	}
	// Interfaces named with -i must exist at start (bad input otherwise);
	// later they are followed by name.
	for _, name := range opts.Interfaces {
		if _, err := probe.ResolveInterfaces([]string{name}); err != nil {
			return usageError{err.Error()}
		}
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		if max := agent.CgroupMemoryMax(); max > 0 {
			// The heap grows with the host's sockets; near the container's
			// limit, collect harder rather than be killed.
			debug.SetMemoryLimit(max / 10 * 8)
		}
	}
	stderr := env.Stderr
	opts.Log = func(msg string) { fmt.Fprintf(stderr, "tcplens agent: %s\n", msg) }
	if len(f.log) > 0 {
		el, err := newAgentLog(f.log, f.logFile, f.logMaxBytes, env.Stdout)
		if err != nil {
			return err
		}
		opts.EventLog = el
	}
	l, err := agent.Listen(opts.Listen)
	if err != nil {
		return err
	}
	defer l.Close()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	a, err := agent.Start(ctx, opts)
	if err != nil {
		return err // Start closed the event log
	}
	defer a.Close()
	version, commit, _ := versionInfo()
	reg := agent.Registry(a.Metrics(), version, commit)
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv := agent.Serve(l, reg, a.NotReady, opts.WebConfigFile, opts.Pprof, logger)
	if opts.Guard != nil {
		mode := "enforcing"
		if opts.Guard.DryRun {
			mode = "dry run, dropping nothing"
		}
		opts.Log(fmt.Sprintf("guard rules from %s on every watched interface (%s)", f.guardRules, mode))
	}
	opts.Log(fmt.Sprintf("serving on %s", opts.Listen))
	for {
		select {
		case <-ctx.Done():
			serr := srv.Shutdown()
			if cerr := a.Close(); cerr != nil {
				return cerr
			}
			return serr
		case err := <-srv.Done():
			return fmt.Errorf("HTTP server on %s: %w", opts.Listen, err)
		case <-hup:
			reloadAgent(env, args, f, a, opts.Log)
		}
	}
}

// reloadAgent reads the config file again (SIGHUP). Interfaces change at
// once; a change to what needs a restart (listener, sources) is said. A
// bad file keeps the running settings.
func reloadAgent(env Env, args []string, old *agentFlags, a *agent.Agent, logf func(string)) {
	nf, o, err := parseAgentFlags(Env{Stdout: io.Discard, Stderr: io.Discard}, args)
	if err != nil {
		logf("reload: keeping the running settings: " + err.Error())
		return
	}
	if err := a.Reload(o.Interfaces, o.InterfacesRegex); err != nil {
		logf("reload: " + err.Error())
		return
	}
	reloadAgentGuard(nf, old, a, logf)
	if nf.listen != old.listen || nf.webConfig != old.webConfig || !slices.Equal(nf.sources, old.sources) ||
		nf.hook != old.hook || nf.direction != old.direction || nf.pprof != old.pprof || nf.perRemotePort != old.perRemotePort || nf.netns != old.netns {
		logf("reload: interfaces applied; listen, web-config-file, events, hook, direction, pprof, per-remote-port and netns take effect at the next start")
	} else {
		logf("reload: settings read again")
	}
}

// reloadAgentGuard reads the guard rules again. The stage itself is loaded
// at start only; a bad file or a lockout keeps the rules in force, and
// counts a failed reload.
func reloadAgentGuard(nf, old *agentFlags, a *agent.Agent, logf func(string)) {
	switch {
	case old.guardRules == "" && nf.guardRules == "":
		return
	case old.guardRules == "":
		logf("reload: --guard-rules takes effect at the next start (the agent started without the guard stage)")
		return
	case nf.guardRules == "":
		logf("reload: no --guard-rules any more: the guard stage stays, with the rules in force, until the next start")
		return
	}
	rules, err := nf.guard()
	if err != nil {
		a.GuardReloadFailed()
		logf("reload: keeping the guard rules in force: " + err.Error())
		return
	}
	if err := a.SetGuardRules(*rules); err != nil {
		logf("reload: keeping the guard rules in force: " + err.Error())
		return
	}
	mode := "enforcing"
	if rules.DryRun {
		mode = "dry run, dropping nothing"
	}
	logf(fmt.Sprintf("reload: guard rules from %s in force (%s)", nf.guardRules, mode))
}
