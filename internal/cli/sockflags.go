package cli

import (
	"github.com/spf13/pflag"

	"github.com/tcplens/tcplens/internal/probe"
)

// sockFlags are the socket-path filters: --port, --host, -4, -6.
type sockFlags struct {
	port       uint
	host       string
	ipv4, ipv6 bool

	fs *pflag.FlagSet // to tell an explicit --port 0 from none
}

func (s *sockFlags) register(fs *pflag.FlagSet) {
	s.fs = fs
	fs.UintVar(&s.port, "port", 0, "only connections with `PORT` at either end")
	fs.StringVar(&s.host, "host", "", "only connections with an end in `IP|CIDR`")
	fs.BoolVarP(&s.ipv4, "ipv4", "4", false, "only IPv4")
	fs.BoolVarP(&s.ipv6, "ipv6", "6", false, "only IPv6")
}

// filter checks the flags and turns them into the kernel-side filter.
func (s *sockFlags) filter() (probe.SockFilter, error) {
	var f probe.SockFilter
	if s.port > 65535 || (s.port == 0 && s.fs != nil && s.fs.Changed("port")) {
		return f, usagef("--port %d: a port is 1 to 65535", s.port)
	}
	f.Port = uint16(s.port)
	if s.ipv4 && s.ipv6 {
		return f, usagef("-4 and -6 exclude each other")
	}
	if s.ipv4 {
		f.Family = 4
	}
	if s.ipv6 {
		f.Family = 6
	}
	if s.host != "" {
		p, err := probe.ParseHost(s.host)
		if err != nil {
			return f, usageError{err.Error()}
		}
		if (f.Family == 4 && !p.Addr().Is4()) || (f.Family == 6 && p.Addr().Is4()) {
			return f, usagef("--host %s does not match the address family asked for with -4/-6", s.host)
		}
		f.Host = p
	}
	return f, nil
}
