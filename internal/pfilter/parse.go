package pfilter

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Supported says which part of the pcap-filter language Parse takes, for
// error messages and the README.
const Supported = "tcp, ip, ip6, [src|dst|src or dst|src and dst] host ADDR|net CIDR|port N|portrange N-M, and/&&, or/||, not/!, parentheses"

// Parse compiles a tcpdump-style expression (the subset in Supported)
// with tcpdump's rules: `not` binds tightest, `and` and `or` have equal
// precedence and group left to right, and a bare value takes the
// qualifiers of the value before it (`port 80 or 443`). The packet path
// sees only TCP, so `tcp` matches everything. Anything else is refused
// with one line naming it.
func Parse(expr string) (Program, error) {
	toks := tokenize(expr)
	if len(toks) == 0 {
		return nil, nil
	}
	p := &parser{toks: toks}
	prog, err := p.expr()
	if err == nil && p.pos < len(p.toks) {
		err = fmt.Errorf("unexpected %q", p.toks[p.pos])
	}
	if err != nil {
		return nil, fmt.Errorf("filter expression %q: %w", expr, err)
	}
	if err := prog.Check(); err != nil {
		return nil, fmt.Errorf("filter expression %q: %w", expr, err)
	}
	return prog, nil
}

func tokenize(s string) []string {
	var toks []string
	cur := strings.Builder{}
	flush := func() {
		if cur.Len() > 0 {
			toks = append(toks, cur.String())
			cur.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			flush()
		case c == '(' || c == ')':
			flush()
			toks = append(toks, string(c))
		case c == '!' && (i+1 == len(s) || s[i+1] != '='):
			flush()
			toks = append(toks, "!")
		case (c == '&' || c == '|') && i+1 < len(s) && s[i+1] == c:
			flush()
			toks = append(toks, s[i:i+2])
			i++
		default:
			cur.WriteByte(c)
		}
	}
	flush()
	return toks
}

type qual struct {
	dir Dir
	typ string // host, net, port, portrange
}

type parser struct {
	toks []string
	pos  int
	last *qual
}

func (p *parser) peek(k int) string {
	if p.pos+k < len(p.toks) {
		return strings.ToLower(p.toks[p.pos+k])
	}
	return ""
}

func (p *parser) next() string {
	t := p.peek(0)
	p.pos++
	return t
}

func (p *parser) expr() (Program, error) {
	left, err := p.unary()
	if err != nil {
		return nil, err
	}
	for {
		var op Op
		switch p.peek(0) {
		case "and", "&&":
			op = OpAnd
		case "or", "||":
			op = OpOr
		default:
			return left, nil
		}
		p.pos++
		right, err := p.unary()
		if err != nil {
			return nil, err
		}
		left = append(append(left, right...), Insn{Op: op})
	}
}

func (p *parser) unary() (Program, error) {
	switch t := p.peek(0); t {
	case "not", "!":
		p.pos++
		e, err := p.unary()
		if err != nil {
			return nil, err
		}
		return append(e, Insn{Op: OpNot}), nil
	case "(":
		p.pos++
		e, err := p.expr()
		if err != nil {
			return nil, err
		}
		if p.next() != ")" {
			return nil, fmt.Errorf("missing )")
		}
		return e, nil
	case "":
		return nil, fmt.Errorf("expression ends where a test was expected")
	case ")", "and", "&&", "or", "||":
		return nil, fmt.Errorf("unexpected %q", t)
	}
	return p.primitive()
}

func isEnd(t string) bool {
	switch t {
	case "", ")", "and", "&&", "or", "||":
		return true
	}
	return false
}

func (p *parser) primitive() (Program, error) {
	var family uint8
	proto := ""
	switch t := p.peek(0); t {
	case "tcp", "ip", "ip6":
		proto = t
		p.pos++
		if t == "ip" {
			family = 4
		} else if t == "ip6" {
			family = 6
		}
		if isEnd(p.peek(0)) {
			if family == 0 {
				return Program{{Op: OpTrue}}, nil
			}
			return Program{{Op: OpFamily, Family: family}}, nil
		}
	}
	q := qual{}
	explicit := false
	switch t := p.peek(0); t {
	case "src", "dst":
		explicit = true
		p.pos++
		q.dir = DirSrc
		if t == "dst" {
			q.dir = DirDst
		}
		if c, other := p.peek(0), p.peek(1); (c == "or" || c == "and") && (other == "src" || other == "dst") && other != t {
			p.pos += 2
			q.dir = DirEither
			if c == "and" {
				q.dir = DirBoth
			}
		}
	}
	switch t := p.peek(0); t {
	case "host", "net", "port", "portrange":
		explicit = true
		q.typ = t
		p.pos++
	}
	if !explicit && proto != "" {
		return nil, fmt.Errorf("%q after %q is not supported (supported: %s)", p.peek(0), proto, Supported)
	}
	if !explicit {
		if p.last == nil {
			q = qual{dir: DirEither, typ: "host"}
		} else {
			q = *p.last
		}
	}
	// As tcpdump: a port belongs to tcp, an address to ip or ip6.
	isPort := q.typ == "port" || q.typ == "portrange"
	if (proto == "tcp" && !isPort) || ((proto == "ip" || proto == "ip6") && isPort) {
		return nil, fmt.Errorf("%q applied to %s: tcpdump refuses it too (write `%s and %s ...`)", proto, q.typ, proto, q.typ)
	}
	if q.dir == 0 {
		q.dir = DirEither
	}
	if q.typ == "" {
		q.typ = "host"
	}
	val := p.next()
	if isEnd(val) || val == "not" || val == "!" || val == "(" {
		return nil, fmt.Errorf("%s needs a value", q.typ)
	}
	if !explicit && !startsValue(val) {
		return nil, fmt.Errorf("%q is not supported (supported: %s)", val, Supported)
	}
	in, err := value(q, val)
	if err != nil {
		return nil, err
	}
	if family != 0 && in.Op == OpHost && in.Family != family {
		return nil, fmt.Errorf("%s %s: the address is not of the family %s asks for", q.typ, val, proto)
	}
	p.last = &q
	return Program{in}, nil
}

// startsValue says whether a bare word can be a value (an address, a
// prefix, a number) rather than a keyword tcplens does not know.
func startsValue(t string) bool {
	return t != "" && (t[0] >= '0' && t[0] <= '9' || strings.Contains(t, ":"))
}

func value(q qual, v string) (Insn, error) {
	switch q.typ {
	case "host":
		a, err := netip.ParseAddr(v)
		if err != nil {
			return Insn{}, fmt.Errorf("host %q: not an IP address (names are not resolved)", v)
		}
		a = a.WithZone("")
		return hostInsn(q.dir, netip.PrefixFrom(a, a.BitLen())), nil
	case "net":
		pf, err := netip.ParsePrefix(v)
		if err != nil {
			a, aerr := netip.ParseAddr(v)
			if aerr != nil {
				return Insn{}, fmt.Errorf("net %q: not an address or CIDR prefix", v)
			}
			pf = netip.PrefixFrom(a, a.BitLen())
		}
		if pf.Masked() != pf {
			return Insn{}, fmt.Errorf("net %s: bits set outside the prefix", v)
		}
		return hostInsn(q.dir, pf), nil
	case "port":
		n, err := port(v)
		if err != nil {
			return Insn{}, err
		}
		return Insn{Op: OpPort, Dir: q.dir, PortLo: n, PortHi: n}, nil
	case "portrange":
		lo, hi, ok := strings.Cut(v, "-")
		if !ok {
			return Insn{}, fmt.Errorf("portrange %q: want N-M", v)
		}
		l, err := port(lo)
		if err != nil {
			return Insn{}, err
		}
		h, err := port(hi)
		if err != nil {
			return Insn{}, err
		}
		if l > h {
			l, h = h, l // tcpdump swaps them too
		}
		return Insn{Op: OpPort, Dir: q.dir, PortLo: l, PortHi: h}, nil
	}
	panic("unknown qualifier " + q.typ)
}

func port(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("port %q: not a number 0 to 65535 (names are not resolved)", s)
	}
	return uint16(n), nil
}
