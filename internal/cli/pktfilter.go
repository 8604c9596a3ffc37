package cli

import (
	"slices"
	"strings"

	"github.com/spf13/pflag"

	"github.com/tcplens/tcplens/internal/pfilter"
	"github.com/tcplens/tcplens/internal/probe"
)

// packetFilterFlags are the packet path's kernel filters: --port, --host
// (repeatable, any of them), -4, -6, --flags (capture) and a tcpdump-style
// expression; all of them must hold.
type packetFilterFlags struct {
	ports      []uint
	hosts      []string
	ipv4, ipv6 bool
	tcpFlags   string
	expr       string
}

func (p *packetFilterFlags) register(fs *pflag.FlagSet, withTCPFlags bool) {
	fs.UintSliceVar(&p.ports, "port", nil, "only packets with `PORT` at either end (repeatable: any of them)")
	fs.Lookup("port").DefValue = ""
	fs.StringArrayVar(&p.hosts, "host", nil, "only packets with an address in `IP|CIDR` at either end (repeatable: any of them)")
	fs.BoolVarP(&p.ipv4, "ipv4", "4", false, "only IPv4")
	fs.BoolVarP(&p.ipv6, "ipv6", "6", false, "only IPv6")
	fs.StringVar(&p.expr, "filter", "", "only packets matching the tcpdump-style `EXPR` (subset: "+pfilter.Supported+")")
	if withTCPFlags {
		fs.StringVar(&p.tcpFlags, "flags", "", "only packets with any of the TCP flags in `LIST` (e.g. SYN,RST)")
	}
}

// program checks the flags and compiles them, with extra expression words
// (capture's trailing arguments), into one kernel filter.
func (p *packetFilterFlags) program(args []string) (pfilter.Program, error) {
	var f pfilter.Flags
	var err error
	if f.Ports, err = parsePorts("port", p.ports); err != nil {
		return nil, err
	}
	slices.Sort(f.Ports)
	f.Ports = slices.Compact(f.Ports)
	if p.ipv4 && p.ipv6 {
		return nil, usagef("-4 and -6 exclude each other")
	}
	if p.ipv4 {
		f.Family = 4
	} else if p.ipv6 {
		f.Family = 6
	}
	for _, h := range p.hosts {
		pf, err := probe.ParseHost(h)
		if err != nil {
			return nil, usageError{err.Error()}
		}
		if (f.Family == 4 && !pf.Addr().Is4()) || (f.Family == 6 && pf.Addr().Is4()) {
			return nil, usagef("--host %s does not match the address family asked for with -4/-6", h)
		}
		if !slices.Contains(f.Hosts, pf) {
			f.Hosts = append(f.Hosts, pf)
		}
	}
	if p.tcpFlags != "" {
		if f.TCPFlags, err = pfilter.ParseTCPFlags(p.tcpFlags); err != nil {
			return nil, usageError{err.Error()}
		}
	}
	exprText := strings.TrimSpace(strings.Join(append([]string{p.expr}, args...), " "))
	expr, err := pfilter.Parse(exprText)
	if err != nil {
		return nil, usageError{err.Error()}
	}
	prog := pfilter.And(f.Program(), expr)
	if err := prog.Check(); err != nil {
		return nil, usageError{err.Error()}
	}
	return prog, nil
}
