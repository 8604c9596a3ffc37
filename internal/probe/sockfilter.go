package probe

import (
	"fmt"
	"net/netip"
	"structs"

	"github.com/cilium/ebpf"
)

// SockFilter is --port/--host/-4/-6, applied in the kernel by the socket
// path (bpf/sock_common.h, filter_match).
type SockFilter struct {
	Port   uint16       // 0: any; else either end
	Family uint8        // 0: any, 4 or 6
	Host   netip.Prefix // zero: any; else either end inside it
}

// kernelSockFilter mirrors struct sock_filter_cfg in bpf/sock_common.h;
// TestSockFilterLayout keeps the two in step.
type kernelSockFilter struct {
	_          structs.HostLayout
	Port       uint16
	Family     uint8
	HostFamily uint8
	HostPrefix uint32
	HostAddr   [16]byte
}

// ApplySockFilter sets the `filter` constant of a socket-path object
// before it is loaded.
func ApplySockFilter(spec *ebpf.CollectionSpec, f SockFilter) error {
	k := kernelSockFilter{Port: f.Port, Family: f.Family}
	if f.Host.IsValid() {
		addr := f.Host.Addr()
		k.HostPrefix = uint32(f.Host.Bits())
		if addr.Is4() {
			k.HostFamily = 4
			a := addr.As4()
			copy(k.HostAddr[:], a[:])
		} else {
			k.HostFamily = 6
			k.HostAddr = addr.As16()
		}
	}
	v, ok := spec.Variables["filter"]
	if !ok {
		return fmt.Errorf("object has no filter constant")
	}
	if err := v.Set(k); err != nil {
		return fmt.Errorf("set socket filter: %w", err)
	}
	return nil
}

// ParseHost reads --host: an IP address or a CIDR prefix.
func ParseHost(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("--host %q: not an IP address or CIDR prefix", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
