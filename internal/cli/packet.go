package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/tcplens/tcplens/internal/probe"
)

// startPacketPath resolves the interfaces and hook, loads the packet path
// and attaches it everywhere, or attaches nothing and says why. It then
// follows the interfaces: the returned context ends, with a cause that
// packetRunError reports, when one goes away (unless --wait-interface).
func startPacketPath(ctx context.Context, env Env, command string, c *common, cfg probe.PacketConfig) (*probe.PacketPath, context.Context, error) {
	hook, err := resolveHook(c.hook)
	if err != nil {
		return nil, nil, err
	}
	if cfg.Direction, err = probe.ParseDirection(c.direction); err != nil {
		return nil, nil, usagef("--direction: %v", err)
	}
	ifaces, err := probe.ResolveInterfaces(c.interfaces)
	if err != nil {
		return nil, nil, usageError{err.Error()}
	}
	if err := probe.CheckPrivileges(command); err != nil {
		return nil, nil, err
	}
	if err := prepareBPF(); err != nil {
		return nil, nil, err
	}
	pp, err := probe.LoadPacketPath(cfg, len(ifaces))
	if err != nil {
		return nil, nil, err
	}
	for slot, ifc := range ifaces {
		if err := pp.Attach(slot, ifc, hook); err != nil {
			pp.Close()
			return nil, nil, err
		}
	}
	for _, a := range pp.Attachments() {
		for _, f := range a.StaleRemoved {
			fmt.Fprintf(env.Stderr, "tcplens %s: removed a stale TC filter left by a killed tcplens (pid %d): %s\n", command, f.OwnerPID, f)
		}
	}
	runCtx, err := pp.Follow(ctx, probe.FollowOptions{
		Hook: hook,
		Wait: c.waitIface,
		Notify: func(msg string) {
			fmt.Fprintf(env.Stderr, "tcplens %s: %s\n", command, msg)
		},
	})
	if err != nil {
		pp.Close()
		return nil, nil, err
	}
	if err := writeReadyFile(c.readyFile, describeAttachments(pp.Attachments())); err != nil {
		pp.Close()
		return nil, nil, err
	}
	return pp, runCtx, nil
}

// packetRunError is the run's error: runErr, or else the removal of an
// interface that ended the run (exit 1).
func packetRunError(ctx context.Context, runErr error) error {
	if runErr != nil {
		return runErr
	}
	var gone *probe.InterfaceGoneError
	if cause := context.Cause(ctx); errors.As(cause, &gone) || errors.Is(cause, probe.ErrLinkWatch) {
		return cause
	}
	return nil
}

// parsePorts checks port numbers given as flags.
func parsePorts(flag string, in []uint) ([]uint16, error) {
	out := make([]uint16, 0, len(in))
	for _, p := range in {
		if p < 1 || p > 65535 {
			return nil, usagef("--%s %d: a port is 1 to 65535", flag, p)
		}
		out = append(out, uint16(p))
	}
	return out, nil
}

// registerDirection adds --direction with its default.
func (c *common) registerDirection(fs *pflag.FlagSet, def string) {
	fs.StringVar(&c.direction, "direction", def, "watch packets received (in), sent (out) or both, counted apart; egress always attaches on TC (tcx, else netlink TC), also when ingress is XDP")
}

// hookLabel says how a's direction dir is attached: "tc/tcx", "xdp/native".
func hookLabel(a probe.Attachment, dir probe.Direction) string {
	if dir == probe.DirOut {
		return fmt.Sprintf("%s/%s", probe.HookTC, a.EgressMode)
	}
	return fmt.Sprintf("%s/%s", a.Hook, a.Mode)
}

// counterView is one interface's counters in one direction: a row of the
// reports.
type counterView struct {
	slot  uint32
	iface string
	dir   probe.Direction // DirIn or DirOut
	hook  string          // as hookLabel says
}

// counterViews lists the rows: each attached interface, in before out.
func counterViews(dir probe.Direction, attached []probe.Attachment) []counterView {
	var vs []counterView
	for _, a := range attached {
		for _, d := range dir.Directions() {
			vs = append(vs, counterView{slot: a.Slot, iface: a.Interface.Name, dir: d, hook: hookLabel(a, d)})
		}
	}
	return vs
}

// readViewCounters reads every view's counters. A slot's counters outlive
// its interface: with --wait-interface they go on where they stopped.
func readViewCounters(pp *probe.PacketPath, views []counterView) ([]probe.FlagCounters, error) {
	out := make([]probe.FlagCounters, len(views))
	for i, v := range views {
		c, err := pp.DirCounters(v.slot, v.dir)
		if err != nil {
			return nil, err
		}
		out[i] = c
	}
	return out, nil
}
