package cli

import (
	"fmt"

	"github.com/tcplens/tcplens/internal/probe"
)

// startPacketPath resolves the interfaces and hook, loads the packet path
// and attaches it everywhere, or attaches nothing and says why.
func startPacketPath(c *common, command string, cfg probe.PacketConfig) (*probe.PacketPath, error) {
	hook, err := resolveHook(c.hook)
	if err != nil {
		return nil, err
	}
	ifaces, err := probe.ResolveInterfaces(c.interfaces)
	if err != nil {
		return nil, usageError{err.Error()}
	}
	if err := probe.CheckPrivileges(command); err != nil {
		return nil, err
	}
	if err := prepareBPF(); err != nil {
		return nil, err
	}
	pp, err := probe.LoadPacketPath(cfg, len(ifaces))
	if err != nil {
		return nil, err
	}
	for slot, ifc := range ifaces {
		if err := pp.Attach(slot, ifc, hook); err != nil {
			pp.Close()
			return nil, err
		}
	}
	if err := writeReadyFile(c.readyFile, describeAttachments(pp.Attached)); err != nil {
		pp.Close()
		return nil, err
	}
	return pp, nil
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
