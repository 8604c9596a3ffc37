package probe

import (
	"fmt"
	"os"
	"path/filepath"
)

// Hook is where the packet path attaches.
type Hook string

const (
	HookAuto Hook = "auto"
	HookXDP  Hook = "xdp"
	HookTC   Hook = "tc"
)

// ParseHook checks a --hook value.
func ParseHook(s string) (Hook, error) {
	switch h := Hook(s); h {
	case HookAuto, HookXDP, HookTC:
		return h, nil
	}
	return "", fmt.Errorf("unknown hook %q: want auto, xdp or tc", s)
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

// ChooseHook picks the hook for HookAuto: native XDP on drivers where it
// pays, tcx everywhere else (veth, virtio, bridges, tunnels, loopback).
func ChooseHook(iface Interface) Hook {
	if iface.preferNativeXDP() {
		return HookXDP
	}
	return HookTC
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
