// Package pfilter is the packet path's filter: --port, --host, -4, -6,
// --flags and a tcpdump-style expression, compiled into one small postfix
// program that the kernel runs on a stack of bits (bpf/pktfilter.h). It
// parses and compiles; it knows nothing of BPF maps or layouts.
package pfilter

import (
	"fmt"
	"net/netip"
	"strings"
)

// MaxInsns is the longest program the kernel side runs
// (PKT_FILTER_MAX_INSNS in bpf/pktfilter.h).
const MaxInsns = 32

// Op is an instruction's operation; the numbers are the kernel's.
type Op uint8

const (
	OpTrue   Op = 0 // push 1
	OpPort   Op = 1 // push: a port (per Dir) in [PortLo, PortHi]
	OpHost   Op = 2 // push: an address (per Dir) inside Prefix (and of its family)
	OpFamily Op = 3 // push: the packet's IP version is Family
	OpFlags  Op = 4 // push: any of the TCP flags in Flags are set
	OpAnd    Op = 5
	OpOr     Op = 6
	OpNot    Op = 7
)

// Dir says which end of a packet a port or host test looks at.
type Dir uint8

const (
	DirSrc    Dir = 1
	DirDst    Dir = 2
	DirEither     = DirSrc | DirDst
	DirBoth   Dir = DirSrc | DirDst | 4 // tcpdump's `src and dst`
)

// TCP flag bits as in byte 13 of the TCP header.
const (
	FlagFIN uint8 = 1 << iota
	FlagSYN
	FlagRST
	FlagPSH
	FlagACK
	FlagURG
	FlagECE
	FlagCWR
)

var flagNames = []struct {
	name string
	bit  uint8
}{{"FIN", FlagFIN}, {"SYN", FlagSYN}, {"RST", FlagRST}, {"PSH", FlagPSH}, {"ACK", FlagACK}, {"URG", FlagURG}, {"ECE", FlagECE}, {"CWR", FlagCWR}}

// Insn is one instruction.
type Insn struct {
	Op             Op
	Dir            Dir
	PortLo, PortHi uint16
	Prefix         netip.Prefix
	Family         uint8 // OpFamily: 4 or 6
	Flags          uint8 // OpFlags
}

// Program is a filter in postfix order; an empty one matches every TCP
// packet.
type Program []Insn

// And is a and b (either may be empty: it matches everything).
func And(a, b Program) Program {
	switch {
	case len(a) == 0:
		return b
	case len(b) == 0:
		return a
	}
	out := append(append(append(Program{}, a...), b...), Insn{Op: OpAnd})
	return out
}

// anyOf is the OR of the given tests.
func anyOf(tests []Insn) Program {
	var p Program
	for i, t := range tests {
		p = append(p, t)
		if i > 0 {
			p = append(p, Insn{Op: OpOr})
		}
	}
	return p
}

// Flags is --port, --host, -4/-6 and --flags: any port, any host, the
// family, any flag, the kinds ANDed, as on the socket path.
type Flags struct {
	Ports    []uint16
	Hosts    []netip.Prefix
	Family   uint8 // 0: any
	TCPFlags uint8 // 0: any packet
}

// Program compiles f.
func (f Flags) Program() Program {
	var p Program
	var ports, hosts []Insn
	for _, port := range f.Ports {
		ports = append(ports, Insn{Op: OpPort, Dir: DirEither, PortLo: port, PortHi: port})
	}
	for _, h := range f.Hosts {
		hosts = append(hosts, hostInsn(DirEither, h))
	}
	p = And(p, anyOf(ports))
	p = And(p, anyOf(hosts))
	if f.Family != 0 {
		p = And(p, Program{{Op: OpFamily, Family: f.Family}})
	}
	if f.TCPFlags != 0 {
		p = And(p, Program{{Op: OpFlags, Flags: f.TCPFlags}})
	}
	return p
}

func hostInsn(d Dir, p netip.Prefix) Insn {
	in := Insn{Op: OpHost, Dir: d, Prefix: p.Masked(), Family: 6}
	if p.Addr().Is4() {
		in.Family = 4
	}
	return in
}

// Check says whether the kernel can run p.
func (p Program) Check() error {
	if len(p) > MaxInsns {
		return fmt.Errorf("filter too long: %d instructions, the kernel side runs at most %d (each port, host, net, flag test and and/or/not is one)", len(p), MaxInsns)
	}
	return nil
}

// ParseTCPFlags reads --flags: names separated by commas (any of them).
func ParseTCPFlags(s string) (uint8, error) {
	var bits uint8
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		found := false
		for _, f := range flagNames {
			if strings.EqualFold(name, f.name) {
				bits |= f.bit
				found = true
			}
		}
		if !found {
			return 0, fmt.Errorf("--flags %q: %q is not a TCP flag (FIN, SYN, RST, PSH, ACK, URG, ECE, CWR)", s, name)
		}
	}
	return bits, nil
}

// Packet is what a program looks at, for Match.
type Packet struct {
	Src, Dst     netip.Addr
	SPort, DPort uint16
	Flags        uint8
}

// Match runs p on pkt as the kernel does (tests compare the two).
func (p Program) Match(pkt Packet) bool {
	var stack []bool
	family := uint8(6)
	if pkt.Src.Is4() {
		family = 4
	}
	ends := func(d Dir, s, t bool) bool {
		if d&4 != 0 {
			return s && t
		}
		return (d&DirSrc != 0 && s) || (d&DirDst != 0 && t)
	}
	for _, in := range p {
		var v bool
		switch in.Op {
		case OpAnd, OpOr:
			a, b := stack[len(stack)-2], stack[len(stack)-1]
			stack = stack[:len(stack)-2]
			v = a && b
			if in.Op == OpOr {
				v = a || b
			}
		case OpNot:
			stack[len(stack)-1] = !stack[len(stack)-1]
			continue
		case OpTrue:
			v = true
		case OpPort:
			v = ends(in.Dir, pkt.SPort >= in.PortLo && pkt.SPort <= in.PortHi, pkt.DPort >= in.PortLo && pkt.DPort <= in.PortHi)
		case OpHost:
			v = family == in.Family && ends(in.Dir, in.Prefix.Contains(pkt.Src), in.Prefix.Contains(pkt.Dst))
		case OpFamily:
			v = family == in.Family
		case OpFlags:
			v = pkt.Flags&in.Flags != 0
		}
		stack = append(stack, v)
	}
	return len(stack) == 0 || stack[len(stack)-1]
}
