package probe

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strings"
)

// Interface is a network device the packet path can watch.
type Interface struct {
	Name   string
	Index  int
	Driver string // kernel driver from sysfs, "" for virtual devices
}

// ResolveInterfaces looks up each name; with none given it picks the
// interface of the default route.
func ResolveInterfaces(names []string) ([]Interface, error) {
	if len(names) == 0 {
		name, err := DefaultRouteInterface()
		if err != nil {
			return nil, err
		}
		names = []string{name}
	}
	if len(names) > MaxInterfaces {
		return nil, fmt.Errorf("too many interfaces: %d, at most %d", len(names), MaxInterfaces)
	}
	seen := map[string]bool{}
	var out []Interface
	for _, name := range names {
		if seen[name] {
			return nil, fmt.Errorf("interface %s given twice", name)
		}
		seen[name] = true
		ifc, err := net.InterfaceByName(name)
		if err != nil {
			return nil, fmt.Errorf("interface %s: no such network device in this network namespace", name)
		}
		out = append(out, Interface{Name: ifc.Name, Index: ifc.Index, Driver: interfaceDriver(ifc.Name)})
	}
	return out, nil
}

// DefaultRouteInterface names the device of the IPv4 default route, or of
// the IPv6 one when there is no IPv4 default.
func DefaultRouteInterface() (string, error) {
	if name := defaultRoute4("/proc/net/route"); name != "" {
		return name, nil
	}
	if name := defaultRoute6("/proc/net/ipv6_route"); name != "" {
		return name, nil
	}
	return "", fmt.Errorf("no default route in this network namespace: name an interface with -i")
}

func defaultRoute4(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		// Iface Destination Gateway Flags RefCnt Use Metric Mask ...
		fields := strings.Fields(s.Text())
		if len(fields) >= 8 && fields[1] == "00000000" && fields[7] == "00000000" {
			return fields[0]
		}
	}
	return ""
}

func defaultRoute6(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		// dst dstlen src srclen nexthop metric refcnt use flags iface
		fields := strings.Fields(s.Text())
		if len(fields) == 10 && fields[0] == strings.Repeat("0", 32) && fields[1] == "00" && fields[9] != "lo" {
			return fields[9]
		}
	}
	return ""
}
