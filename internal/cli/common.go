package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cilium/ebpf/rlimit"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/tcplens/tcplens/internal/output"
	"github.com/tcplens/tcplens/internal/probe"
)

// usageError is bad usage or input: exit code 2, nothing attached.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

var (
	errHelp     = errors.New("help requested")
	errNotReady = errors.New("not ready")
)

// common holds the flags shared by the commands (README, "Commands").
type common struct {
	interfaces []string
	output     string
	interval   time.Duration
	duration   time.Duration
	count      int
	readyFile  string
	hook       string
	waitIface  bool
	direction  string // --direction of the packet path (packet.go)

	format output.Format
	fs     *pflag.FlagSet
	// noInterval, when set, says why the command refuses --interval.
	noInterval string
}

// minInterval is the shortest --interval: below it a report costs more
// than the interval it covers, and timers no longer keep the pace.
const minInterval = 10 * time.Millisecond

// register adds the shared flags; a defaultInterval of 0 means no
// periodic report unless --interval is given.
func (c *common) register(fs *pflag.FlagSet, defaultInterval time.Duration) {
	c.fs = fs
	fs.StringVarP(&c.output, "output", "o", "text", "output format: text or json (one object per line)")
	fs.DurationVar(&c.interval, "interval", defaultInterval, "report every `DURATION`")
	fs.DurationVar(&c.duration, "duration", 0, "exit cleanly after `DURATION` (0: run until interrupted)")
	fs.IntVarP(&c.count, "count", "c", 0, "exit after `N` reports (0: no limit)")
	fs.StringVar(&c.readyFile, "ready-file", "", "write `PATH` once every program is attached")
}

func (c *common) registerPacket(fs *pflag.FlagSet) {
	fs.StringArrayVarP(&c.interfaces, "interface", "i", nil, "watch interface `NAME` (repeatable; default: the default route's)")
	fs.StringVar(&c.hook, "hook", "auto", "attach with `HOOK`: auto, xdp, tc (tcx, else netlink TC), tcx or tc-netlink; auto: native XDP where the driver pays for it, else tcx, netlink TC, generic XDP, the first that works")
	fs.BoolVar(&c.waitIface, "wait-interface", false, "when a watched interface is removed, wait for one of that name and attach to it (default: exit 1)")
}

func (c *common) validate() error {
	f, err := output.ParseFormat(c.output)
	if err != nil {
		return usageError{err.Error()}
	}
	c.format = f
	if c.fs.Changed("interval") {
		if c.noInterval != "" {
			return usagef("--interval: %s", c.noInterval)
		}
		if c.interval < minInterval {
			return usagef("--interval %s: the shortest is %s", c.interval, minInterval)
		}
	}
	if c.duration < 0 {
		return usagef("--duration must not be negative, not %s", c.duration)
	}
	if c.count < 0 {
		return usagef("--count must not be negative, not %d", c.count)
	}
	return nil
}

// withoutInterval is for a command with no periodic report: --interval is
// refused there, saying why, and its help does not list it.
func (c *common) withoutInterval(why string) {
	c.noInterval = why
	c.fs.MarkHidden("interval")
}

// countsEvents says that -c counts events, for commands that stream them.
func countsEvents(fs *pflag.FlagSet) {
	fs.Lookup("count").Usage = "exit after `N` events (0: no limit)"
}

// parseFlags parses args, turning pflag's errors into usage errors.
func parseFlags(fs *pflag.FlagSet, env Env, args []string) error {
	rest, err := parseFlagsArgs(fs, env, args)
	if err == nil && len(rest) > 0 {
		return usagef("unexpected argument %q", rest[0])
	}
	return err
}

// parseFlagsArgs is parseFlags for a command that takes arguments too
// (capture's filter expression): it returns them.
func parseFlagsArgs(fs *pflag.FlagSet, env Env, args []string) ([]string, error) {
	fs.SetOutput(env.Stderr)
	fs.SortFlags = false
	// pflag prints the error itself unless told not to; we print one line.
	// pflag calls Usage itself on -h/--help.
	fs.Usage = func() {
		fmt.Fprintf(env.Stdout, "Usage: tcplens %s [flags]\n\n%s\n\nFlags:\n%s", fs.Name(), commands[fs.Name()].summary, fs.FlagUsages())
	}
	fs.SetOutput(discard{})
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil, errHelp
		}
		return nil, usageError{err.Error()}
	}
	return fs.Args(), nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// prepareBPF lifts the memlock limit on kernels that still account BPF
// memory that way (before 5.11); later kernels use memcg and need nothing.
func prepareBPF() error {
	if err := rlimit.RemoveMemlock(); err != nil {
		if errors.Is(err, os.ErrPermission) || errors.Is(err, unix.EPERM) {
			// RemoveMemlock fails this way when bpf() itself is refused.
			return fmt.Errorf("load BPF programs: %w", probe.ErrPrivileges)
		}
		return fmt.Errorf("raise RLIMIT_MEMLOCK for BPF maps: %w", err)
	}
	return nil
}

// resolveHook checks --hook.
func resolveHook(s string) (probe.Hook, error) {
	h, err := probe.ParseHook(s)
	if err != nil {
		return "", usageError{err.Error()}
	}
	return h, nil
}

// writeReadyFile tells scripts that everything is attached. It is written
// whole (rename) so a reader never sees a partial file.
func writeReadyFile(path string, what string) error {
	if path == "" {
		return nil
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(fmt.Sprintf("pid %d\n%s\n", os.Getpid(), what)), 0o644); err != nil {
		return fmt.Errorf("write ready file %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write ready file %s: %w", path, err)
	}
	return nil
}

// runPeriodic calls tick every interval until the context ends, the
// duration passes or count ticks have run. A tick error stops it.
func runPeriodic(ctx context.Context, c *common, tick func(now time.Time) error) error {
	ticker := time.NewTicker(c.interval)
	defer ticker.Stop()
	var deadline <-chan time.Time
	if c.duration > 0 {
		timer := time.NewTimer(c.duration)
		defer timer.Stop()
		deadline = timer.C
	}
	for n := 0; c.count == 0 || n < c.count; n++ {
		select {
		case <-ctx.Done():
			return nil
		case <-deadline:
			return nil
		case now := <-ticker.C:
			if err := tick(now); err != nil {
				return err
			}
		}
	}
	return nil
}

// timestamp formats report times: RFC 3339 with nanoseconds, local zone.
func timestamp(t time.Time) string { return t.Format(time.RFC3339Nano) }

// describeAttachments says where the programs went, for people.
func describeAttachments(as []probe.Attachment) string {
	parts := make([]string, len(as))
	for i, a := range as {
		parts[i] = fmt.Sprintf("%s (%s)", a.Interface.Name, a.HookText())
	}
	return strings.Join(parts, ", ")
}
