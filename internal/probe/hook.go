package probe

import (
	"fmt"
	"os"
	"path/filepath"
)

// Hook is where the packet path attaches. An Attachment's Hook is HookXDP
// or HookTC, with its Mode saying how; the other values are requests.
type Hook string

const (
	HookAuto Hook = "auto"
	HookXDP  Hook = "xdp"
	HookTC   Hook = "tc" // tcx where the kernel has it (6.6+), else netlink TC
	// HookTCX and HookTCNetlink ask for one TC mechanism only, so that a
	// test on a kernel with tcx can still exercise the fallback.
	HookTCX       Hook = "tcx"
	HookTCNetlink Hook = "tc-netlink"
)

// Attachment modes, as printed after the hook ("tc/netlink").
const (
	ModeNative  = "native"  // XDP in the driver
	ModeGeneric = "generic" // XDP on the skb
	ModeTCX     = "tcx"     // TC through a tcx bpf_link
	ModeNetlink = "netlink" // TC through a clsact qdisc and a cls_bpf filter
)

// ParseHook checks a --hook value.
func ParseHook(s string) (Hook, error) {
	switch h := Hook(s); h {
	case HookAuto, HookXDP, HookTC, HookTCX, HookTCNetlink:
		return h, nil
	}
	return "", fmt.Errorf("unknown hook %q: want auto, xdp, tc, tcx or tc-netlink", s)
}

// hookTrial is one way to attach, tried in order until one works.
type hookTrial struct {
	hook Hook
	mode string
}

// trials lists what a requested hook tries on iface, in order. Support is
// decided by trying, never by kernel version: tcx fails on kernels before
// 6.6, netlink TC without sch_ingress/cls_bpf, native XDP without driver
// support.
func (h Hook) trials(iface Interface) []hookTrial {
	tcx := hookTrial{HookTC, ModeTCX}
	nl := hookTrial{HookTC, ModeNetlink}
	native := hookTrial{HookXDP, ModeNative}
	generic := hookTrial{HookXDP, ModeGeneric}
	switch h {
	case HookAuto:
		if iface.preferNativeXDP() {
			return []hookTrial{native, tcx, nl, generic}
		}
		return []hookTrial{tcx, nl, generic}
	case HookTC:
		return []hookTrial{tcx, nl}
	case HookTCX:
		return []hookTrial{tcx}
	case HookTCNetlink:
		return []hookTrial{nl}
	case HookXDP:
		return []hookTrial{native, generic}
	}
	return nil
}

// nativeXDPDrivers are drivers whose native XDP runs before the skb is
// built, so XDP is cheaper than TC there. Everything else gets tcx: on veth,
// native XDP cut bulk TCP throughput to about a fifth of no observer in our
// measurements, and an empty XDP program cost the same, so the price is the
// hook, not the program (veth then sends every packet through its XDP NAPI
// path, copying the skbs its peer hands over); tcx stayed within noise of no
// observer (BENCHMARKS.md). virtio_net is left out on purpose: native XDP
// there turns off guest TSO/checksum offload negotiation. The physical
// drivers are listed from their XDP support, not measured here (no such NIC
// in our VMs).
var nativeXDPDrivers = map[string]bool{
	"mlx5_core": true, "mlx4_en": true, "i40e": true, "ice": true,
	"ixgbe": true, "ixgbevf": true, "igc": true, "igb": true,
	"bnxt_en": true, "nfp": true, "qede": true, "ena": true,
	"sfc": true, "thunder_nic": true, "mvneta": true, "mvpp2": true,
	"stmmac": true, "tsnep": true, "dpaa2_eth": true, "fec": true,
}

// ChooseHook is the hook HookAuto tries first: native XDP on drivers where
// it pays, TC everywhere else (veth, virtio, bridges, tunnels, loopback).
func ChooseHook(iface Interface) Hook {
	return HookAuto.trials(iface)[0].hook
}

func (i Interface) preferNativeXDP() bool {
	return nativeXDPDrivers[i.Driver]
}

// interfaceDriver names the kernel driver behind a network device, or ""
// for virtual devices without one in sysfs.
func interfaceDriver(name string) string {
	target, err := os.Readlink(filepath.Join("/sys/class/net", name, "device", "driver"))
	if err != nil {
		return ""
	}
	return filepath.Base(target)
}
