package cli

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/tcplens/tcplens/internal/output"
	"github.com/tcplens/tcplens/internal/probe"
)

func init() {
	register("guard", "drop policy for incoming TCP at XDP/TC: CIDR allow/block lists, port rules, SYN rate limits, port-scan auto-block. "+
		"A deny policy can lock you out of this host: rules that would cut your own SSH connection need --force", runGuard)
}

func runGuard(ctx context.Context, env Env, args []string) error {
	fs := pflag.NewFlagSet("guard", pflag.ContinueOnError)
	var c common
	c.register(fs, 5*time.Second)
	c.registerPacket(fs)
	c.direction = "in" // a drop policy for what arrives; no --direction
	var spec guardRuleSpec
	var scanWindow, blockFor time.Duration
	var rulesFile string
	var force bool
	var top int
	var maxSources uint32
	fs.StringArrayVar(&spec.Allow, "allow", nil, "never drop TCP from `CIDR` (an address or prefix, IPv4 or IPv6; repeatable); beats every other rule")
	fs.StringArrayVar(&spec.Block, "block", nil, "drop all TCP from `CIDR` (repeatable; longest-prefix match)")
	fs.UintSliceVar(&spec.DropPort, "drop-port", nil, "drop all TCP to `PORT` (repeatable)")
	fs.UintSliceVar(&spec.DropSYNPort, "drop-syn-port", nil, "drop new connections (SYN without ACK) to `PORT` (repeatable)")
	fs.BoolVar(&spec.SYNRequireMSS, "syn-require-mss", false, "drop new connections (SYN without ACK) that carry no MSS TCP option: every real stack sends one, crude flood tools do not")
	fs.StringArrayVar(&spec.DropSYNSignature, "drop-syn-signature", nil, fmt.Sprintf("drop new connections whose TCP options signature is `SIG` (LAYOUT:MSS:WSCALE, see the README; e.g. MSTNW:1460:7 or -:-:- for no options; repeatable, at most %d)", probe.MaxSYNSignatures))
	fs.Float64Var(&spec.SYNRate, "syn-rate", 0, "SYNs per second each source may send (`RATE`; 0: no limit); a token bucket per source")
	fs.Uint32Var(&spec.SYNBurst, "syn-burst", 0, "the per-source bucket's depth: `N` SYNs at once (default: one second's worth)")
	fs.Float64Var(&spec.SYNRateGlobal, "syn-rate-global", 0, "SYNs per second for all sources together (`RATE`; 0: no limit): holds the line when sources are spoofed")
	fs.Uint32Var(&spec.SYNBurstGlobal, "syn-burst-global", 0, "the global bucket's depth in `N` SYNs (default: a tenth of a second's worth)")
	fs.Uint32Var(&spec.ScanPorts, "scan-ports", 0, fmt.Sprintf("block a source whose SYNs reach `N` distinct ports within --scan-window (0: off; 2 to %d)", probe.MaxScanPorts))
	fs.DurationVar(&scanWindow, "scan-window", 10*time.Second, "the scan rule's window (`DURATION`)")
	fs.DurationVar(&blockFor, "block-for", time.Minute, "how long a scanning source stays blocked (`DURATION`); it is released after")
	fs.BoolVar(&spec.DryRun, "dry-run", false, "count what the rules would drop, drop nothing")
	fs.StringVar(&rulesFile, "rules", "", "read the rules from YAML `FILE` (keys as the flags, with _: allow, block, drop_port, drop_syn_port, syn_require_mss, drop_syn_signature, syn_rate, syn_burst, syn_rate_global, syn_burst_global, scan_ports, scan_window, block_for, dry_run) instead of flags; SIGHUP reloads it")
	fs.BoolVar(&force, "force", false, "apply rules even if they would block your own SSH connection (SSH_CONNECTION, established sockets to port 22)")
	fs.IntVar(&top, "top", 10, "report the `N` sources that sent most SYNs in each interval")
	fs.Uint32Var(&maxSources, "max-sources", 65536, "per-source entries (`N`, LRU): sources that are rate-limited or scanning")
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return err
	}
	if top < 0 {
		return usagef("--top must not be negative, not %d", top)
	}
	if maxSources < 1 || maxSources > probe.MaxGuardSources {
		return usagef("--max-sources %d: 1 to %d", maxSources, probe.MaxGuardSources)
	}

	var rules probe.GuardRules
	var err error
	if rulesFile != "" {
		for _, f := range []string{"allow", "block", "drop-port", "drop-syn-port", "syn-require-mss", "drop-syn-signature", "syn-rate", "syn-burst", "syn-rate-global",
			"syn-burst-global", "scan-ports", "scan-window", "block-for", "dry-run"} {
			if fs.Changed(f) {
				return usagef("--%s and --rules: give the rules one way (the file has %s too)", f, strings.ReplaceAll(f, "-", "_"))
			}
		}
		if rules, err = loadGuardRules(rulesFile); err != nil {
			return usageError{err.Error()}
		}
	} else {
		if spec.ScanPorts > 0 {
			spec.ScanWindow, spec.BlockFor = scanWindow.String(), blockFor.String()
		}
		rules, err = spec.build(func(key string, _ int) string { return "--" + strings.ReplaceAll(key, "_", "-") })
		if err != nil {
			return usageError{err.Error()}
		}
	}
	if why := lockout(rules, sshPeers()); why != "" && !force {
		return usagef("%s: this would lock you out; add --allow for it, or --force", why)
	}

	pp, ctx, err := startPacketPath(ctx, env, "guard", &c, probe.PacketConfig{Guard: true, GuardRules: &rules, GuardSources: maxSources})
	if err != nil {
		return err
	}
	defer pp.Close()
	if c.format == output.Text {
		mode := "enforcing"
		if rules.DryRun {
			mode = "dry run, dropping nothing"
		}
		fmt.Fprintf(env.Stderr, "tcplens guard: %s on %s; Ctrl-C to stop\n", mode, describeAttachments(pp.Attachments()))
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	rep := &guardReporter{env: env, format: c.format, json: output.NewJSONLines(env.Stdout), top: top,
		dryRun: rules.DryRun, blocked: map[netip.Addr]time.Duration{}, prevSYNs: map[netip.Addr]uint64{}}
	start := time.Now()
	rep.since = start
	var prev probe.GuardCounters
	runErr := runGuardLoop(ctx, &c, hup, func(now time.Time) error {
		cur, err := pp.GuardCounters()
		if err != nil {
			return err
		}
		srcs, err := pp.GuardSources()
		if err != nil {
			return err
		}
		if err := rep.events(now, srcs); err != nil {
			return err
		}
		err = rep.interval("interval", now, subGuard(cur, prev), rep.topSources(srcs))
		prev = cur
		return err
	}, func(now time.Time) error {
		if rulesFile == "" {
			return rep.reload(now, "", fmt.Errorf("no --rules file to reload; the rules stay"))
		}
		next, err := loadGuardRules(rulesFile)
		if err == nil {
			if why := lockout(next, sshPeers()); why != "" && !force {
				err = fmt.Errorf("%s: this would lock you out; the old rules stay", why)
			}
		}
		if err == nil {
			err = pp.SetGuardRules(next)
		}
		if err == nil {
			rep.dryRun = next.DryRun
		}
		return rep.reload(now, rulesFile, err)
	})

	final, err := pp.GuardCounters()
	if err != nil {
		return err
	}
	rep.elapsed = time.Since(start)
	if err := rep.interval("summary", time.Now(), final, nil); err != nil {
		return err
	}
	return packetRunError(ctx, runErr)
}

// runGuardLoop is runPeriodic with SIGHUP: reload runs between ticks.
func runGuardLoop(ctx context.Context, c *common, hup <-chan os.Signal, tick, reload func(time.Time) error) error {
	ticker := time.NewTicker(c.interval)
	defer ticker.Stop()
	var deadline <-chan time.Time
	if c.duration > 0 {
		timer := time.NewTimer(c.duration)
		defer timer.Stop()
		deadline = timer.C
	}
	for n := 0; c.count == 0 || n < c.count; {
		select {
		case <-ctx.Done():
			return nil
		case <-deadline:
			return nil
		case <-hup:
			if err := reload(time.Now()); err != nil {
				return err
			}
		case now := <-ticker.C:
			if err := tick(now); err != nil {
				return err
			}
			n++
		}
	}
	return nil
}

func subGuard(a, b probe.GuardCounters) probe.GuardCounters {
	d := probe.GuardCounters{Packets: a.Packets - b.Packets, Dropped: a.Dropped - b.Dropped, ScanBlocks: a.ScanBlocks - b.ScanBlocks,
		SourcesAdmitted: a.SourcesAdmitted - b.SourcesAdmitted, SourcesRefused: a.SourcesRefused - b.SourcesRefused,
		SourcesFull: a.SourcesFull - b.SourcesFull}
	for i := range d.Matched {
		d.Matched[i] = a.Matched[i] - b.Matched[i]
	}
	return d
}

type guardReporter struct {
	env     Env
	format  output.Format
	json    *output.JSONLines
	top     int
	dryRun  bool
	since   time.Time
	elapsed time.Duration
	// blocked: sources auto-blocked and not yet released, by when the
	// block began (kernel monotonic time), so each block is one event.
	blocked  map[netip.Addr]time.Duration
	prevSYNs map[netip.Addr]uint64
}

func monotonicNow() time.Duration {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) // bpf_ktime_get_ns's clock
	return time.Duration(ts.Nano())
}

// events reports blocks begun and ended since the last call. A blocked
// entry that the LRU evicted is released too (the kernel forgot it).
func (r *guardReporter) events(now time.Time, srcs []probe.GuardSource) error {
	mono := monotonicNow()
	seen := map[netip.Addr]bool{}
	var evs []output.GuardEvent
	for _, s := range srcs {
		seen[s.Addr] = true
		if s.BlockStarted == 0 {
			continue
		}
		started, known := r.blocked[s.Addr]
		if s.BlockedUntil > mono && (!known || started != s.BlockStarted) {
			if known { // an earlier block ended between two looks
				evs = append(evs, output.GuardEvent{Type: "release", Time: timestamp(now), Addr: s.Addr.String()})
			}
			r.blocked[s.Addr] = s.BlockStarted
			until := now.Add(s.BlockedUntil - mono)
			evs = append(evs, output.GuardEvent{Type: "auto_block", Time: timestamp(now), Addr: s.Addr.String(), Rule: "scan",
				Until: timestamp(until), SYNs: s.SYNs})
		} else if known && s.BlockedUntil <= mono {
			delete(r.blocked, s.Addr)
			evs = append(evs, output.GuardEvent{Type: "release", Time: timestamp(now), Addr: s.Addr.String()})
		}
	}
	for a := range r.blocked {
		if !seen[a] {
			delete(r.blocked, a)
			evs = append(evs, output.GuardEvent{Type: "release", Time: timestamp(now), Addr: a.String()})
		}
	}
	for _, e := range evs {
		if err := r.emitEvent(e); err != nil {
			return err
		}
	}
	return nil
}

func (r *guardReporter) emitEvent(e output.GuardEvent) error {
	if r.format == output.JSON {
		if err := r.json.Emit(e); err != nil {
			return err
		}
		return r.json.Flush()
	}
	switch e.Type {
	case "auto_block":
		fmt.Fprintf(r.env.Stdout, "%s auto-blocked %s (%s) until %s\n", e.Time, e.Addr, e.Rule, e.Until)
	case "release":
		fmt.Fprintf(r.env.Stdout, "%s released %s\n", e.Time, e.Addr)
	case "reload":
		if e.Error != "" {
			fmt.Fprintf(r.env.Stdout, "%s reload refused: %s\n", e.Time, e.Error)
		} else {
			fmt.Fprintf(r.env.Stdout, "%s reloaded %s\n", e.Time, e.Source)
		}
	}
	return nil
}

func (r *guardReporter) reload(now time.Time, file string, err error) error {
	e := output.GuardEvent{Type: "reload", Time: timestamp(now), Source: file}
	if err != nil {
		e.Error = err.Error()
		fmt.Fprintf(r.env.Stderr, "tcplens guard: reload: %v\n", err)
	}
	return r.emitEvent(e)
}

// topSources are the sources with most SYNs since the last call.
func (r *guardReporter) topSources(srcs []probe.GuardSource) []output.GuardSource {
	var out []output.GuardSource
	cur := make(map[netip.Addr]uint64, len(srcs))
	for _, s := range srcs {
		cur[s.Addr] = s.SYNs
		d := s.SYNs
		if p, ok := r.prevSYNs[s.Addr]; ok && p <= s.SYNs {
			d -= p
		}
		if d > 0 {
			out = append(out, output.GuardSource{Addr: s.Addr.String(), SYNs: d})
		}
	}
	r.prevSYNs = cur
	sort.Slice(out, func(i, j int) bool {
		if out[i].SYNs != out[j].SYNs {
			return out[i].SYNs > out[j].SYNs
		}
		return out[i].Addr < out[j].Addr
	})
	if len(out) > r.top {
		out = out[:r.top]
	}
	return out
}

func guardRecord(kind string, now time.Time, d time.Duration, dryRun bool, c probe.GuardCounters, top []output.GuardSource) output.GuardRecord {
	m := c.Matched
	return output.GuardRecord{Type: kind, Time: timestamp(now), DurationSeconds: d.Seconds(), DryRun: dryRun,
		Packets: c.Packets, Dropped: c.Dropped,
		Matched: output.GuardRuleCounts{Allow: m[probe.GuardAllowed], Block: m[probe.GuardBlock], DropPort: m[probe.GuardDropPort],
			DropSYNPort: m[probe.GuardDropSYNPort], SYNRequireMSS: m[probe.GuardSYNNoMSS],
			DropSYNSignature: m[probe.GuardSYNSignature],
			Scan:             m[probe.GuardScanBlocked], SYNRate: m[probe.GuardSYNRate], SYNRateGlobal: m[probe.GuardSYNRateGlobal]},
		ScanBlocks: c.ScanBlocks, SourcesAdmitted: c.SourcesAdmitted, SourcesRefused: c.SourcesRefused, SourcesFull: c.SourcesFull,
		TopSources: top}
}

func (r *guardReporter) interval(kind string, now time.Time, c probe.GuardCounters, top []output.GuardSource) error {
	d := now.Sub(r.since)
	if kind == "summary" {
		d = r.elapsed
	} else {
		r.since = now
	}
	rec := guardRecord(kind, now, d, r.dryRun, c, top)
	if r.format == output.JSON {
		if err := r.json.Emit(rec); err != nil {
			return err
		}
		return r.json.Flush()
	}
	writeGuardText(r.env.Stdout, rec)
	return nil
}

func writeGuardText(w io.Writer, rec output.GuardRecord) {
	verb := "dropped"
	if rec.DryRun {
		verb = "would drop"
	}
	if rec.Type == "summary" {
		fmt.Fprintf(w, "\nSummary: %.3fs since start\n", rec.DurationSeconds)
	} else {
		fmt.Fprintf(w, "%s\n", rec.Time)
	}
	m := rec.Matched
	t := output.NewTable(w, "TCP", "DROPPED", "BLOCK", "DROP_PORT", "DROP_SYN_PORT", "NO_MSS", "SYN_SIG", "SCAN", "SYN_RATE", "SYN_RATE_GLOBAL", "ALLOWED", "SCAN_BLOCKS")
	t.Row(rec.Packets, rec.Dropped, m.Block, m.DropPort, m.DropSYNPort, m.SYNRequireMSS, m.DropSYNSignature, m.Scan, m.SYNRate, m.SYNRateGlobal, m.Allow, rec.ScanBlocks)
	t.Flush()
	if rec.DryRun {
		fmt.Fprintf(w, "dry run: the rule columns count what the rules %s\n", verb)
	}
	if rec.SourcesRefused > 0 || rec.SourcesFull > 0 {
		fmt.Fprintf(w, "SYNs of sources without a per-source entry: %d (governed by the global rate only); source table full: %d\n",
			rec.SourcesRefused, rec.SourcesFull)
	}
	for _, s := range rec.TopSources {
		fmt.Fprintf(w, "  %-39s %d SYNs\n", s.Addr, s.SYNs)
	}
}
