package cli

import (
	"slices"

	"github.com/spf13/pflag"

	"github.com/tcplens/tcplens/internal/probe"
)

// sockFlags are the socket-path filters: --port, --lport, --rport, --host
// (each repeatable: any value matches), -4, -6.
type sockFlags struct {
	ports, lports, rports []uint
	hosts                 []string
	ipv4, ipv6            bool
}

func (s *sockFlags) register(fs *pflag.FlagSet) {
	fs.UintSliceVar(&s.ports, "port", nil, "only connections with `PORT` at either end (repeatable: any of them)")
	fs.UintSliceVar(&s.lports, "lport", nil, "only connections with `PORT` at this host's end (repeatable)")
	fs.UintSliceVar(&s.rports, "rport", nil, "only connections with `PORT` at the remote end (repeatable)")
	for _, name := range []string{"port", "lport", "rport"} {
		fs.Lookup(name).DefValue = "" // pflag would show "(default [])"
	}
	fs.StringArrayVar(&s.hosts, "host", nil, "only connections with an end in `IP|CIDR` (repeatable: any of them)")
	fs.BoolVarP(&s.ipv4, "ipv4", "4", false, "only IPv4 (with IPv4 clients of IPv6 sockets)")
	fs.BoolVarP(&s.ipv6, "ipv6", "6", false, "only IPv6")
}

// filter checks the flags and turns them into the kernel-side filter.
func (s *sockFlags) filter() (probe.SockFilter, error) {
	var f probe.SockFilter
	var err error
	if f.Ports, err = sockPorts("port", s.ports); err != nil {
		return f, err
	}
	if f.LPorts, err = sockPorts("lport", s.lports); err != nil {
		return f, err
	}
	if f.RPorts, err = sockPorts("rport", s.rports); err != nil {
		return f, err
	}
	if s.ipv4 && s.ipv6 {
		return f, usagef("-4 and -6 exclude each other")
	}
	if s.ipv4 {
		f.Family = 4
	}
	if s.ipv6 {
		f.Family = 6
	}
	for _, h := range s.hosts {
		p, err := probe.ParseHost(h)
		if err != nil {
			return f, usageError{err.Error()}
		}
		if (f.Family == 4 && !p.Addr().Is4()) || (f.Family == 6 && p.Addr().Is4()) {
			return f, usagef("--host %s does not match the address family asked for with -4/-6", h)
		}
		if !slices.Contains(f.Hosts, p) {
			f.Hosts = append(f.Hosts, p)
		}
	}
	if err := f.Check(); err != nil {
		return f, usageError{err.Error()}
	}
	return f, nil
}

// sockPorts checks one port list; a port given twice counts once.
func sockPorts(flag string, in []uint) ([]uint16, error) {
	ports, err := parsePorts(flag, in)
	if err != nil {
		return nil, err
	}
	slices.Sort(ports)
	return slices.Compact(ports), nil
}
