package probe

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"structs"

	"github.com/cilium/ebpf"
)

// Most entries of each kind the kernel-side filter holds
// (FILTER_MAX_PORTS, FILTER_MAX_PREFIXES in bpf/sock_common.h).
const (
	MaxFilterPorts    = 8
	MaxFilterPrefixes = 8
)

// SockFilter is --port/--lport/--rport/--host/-4/-6, applied in the kernel
// by the socket path (bpf/sock_common.h, filter_match). Within a list any
// entry matches; the lists and Family combine with AND. "Local" is this
// host's end of the connection.
type SockFilter struct {
	Ports  []uint16       // either end
	LPorts []uint16       // this host's end
	RPorts []uint16       // the remote end
	Family uint8          // 0: any, 4 or 6
	Hosts  []netip.Prefix // either end inside one of them
}

// kernelSockFilter mirrors struct sock_filter_cfg in bpf/sock_common.h;
// TestSockFilterLayout keeps the two in step.
type kernelSockFilter struct {
	_                                 structs.HostLayout
	Ports                             [MaxFilterPorts]uint16
	LPorts                            [MaxFilterPorts]uint16
	RPorts                            [MaxFilterPorts]uint16
	NPorts, NLPorts, NRPorts, NPrefix uint8
	Family                            uint8
	_                                 [3]uint8
	Prefixes                          [MaxFilterPrefixes]kernelPrefix
}

// kernelPrefix mirrors struct filter_prefix: address and mask in wire
// order, so the kernel compares words without converting.
type kernelPrefix struct {
	_      structs.HostLayout
	Addr   [16]byte
	Mask   [16]byte
	Family uint8
	_      [3]uint8
}

// kernelFilter checks the list sizes and lays the filter out for the kernel.
func kernelFilter(f SockFilter) (kernelSockFilter, error) {
	k := kernelSockFilter{Family: f.Family}
	for _, l := range []struct {
		name string
		from []uint16
		to   *[MaxFilterPorts]uint16
		n    *uint8
	}{{"--port", f.Ports, &k.Ports, &k.NPorts}, {"--lport", f.LPorts, &k.LPorts, &k.NLPorts}, {"--rport", f.RPorts, &k.RPorts, &k.NRPorts}} {
		if len(l.from) > MaxFilterPorts {
			return k, fmt.Errorf("%s: at most %d ports, got %d", l.name, MaxFilterPorts, len(l.from))
		}
		*l.n = uint8(copy(l.to[:], l.from))
	}
	if len(f.Hosts) > MaxFilterPrefixes {
		return k, fmt.Errorf("--host: at most %d addresses or prefixes, got %d", MaxFilterPrefixes, len(f.Hosts))
	}
	for i, p := range f.Hosts {
		kp := &k.Prefixes[i]
		p = p.Masked()
		addr := p.Addr()
		bits := p.Bits()
		if addr.Is4() {
			kp.Family = 4
			a := addr.As4()
			copy(kp.Addr[:], a[:])
		} else {
			kp.Family = 6
			kp.Addr = addr.As16()
		}
		for w := 0; w < 4; w++ {
			b := min(max(bits-32*w, 0), 32)
			var m uint32
			if b > 0 {
				m = ^uint32(0) << (32 - b)
			}
			binary.BigEndian.PutUint32(kp.Mask[4*w:], m)
		}
	}
	k.NPrefix = uint8(len(f.Hosts))
	return k, nil
}

// ApplySockFilter sets the `filter` constant of a socket-path object
// before it is loaded.
func ApplySockFilter(spec *ebpf.CollectionSpec, f SockFilter) error {
	k, err := kernelFilter(f)
	if err != nil {
		return err
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

// ParseHost reads --host: an IP address or a CIDR prefix. A v4-mapped
// IPv6 address or prefix (::ffff:a.b.c.d) means its IPv4 form, as the
// kernel side reports such connections as IPv4.
func ParseHost(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("--host %q: not an IP address or CIDR prefix", s)
	}
	a = a.Unmap().WithZone("")
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Check says whether the kernel-side filter can hold f (list sizes), so
// that a command can refuse it as bad usage before loading anything.
func (f SockFilter) Check() error {
	_, err := kernelFilter(f)
	return err
}
