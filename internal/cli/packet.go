package cli

import (
	"context"
	"errors"
	"fmt"

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

func hookLabel(a probe.Attachment) string {
	return fmt.Sprintf("%s/%s", a.Hook, a.Mode)
}
