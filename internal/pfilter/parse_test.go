package pfilter

import (
	"net/netip"
	"strings"
	"testing"
)

func pk(src string, sport uint16, dst string, dport uint16, flags uint8) Packet {
	return Packet{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), SPort: sport, DPort: dport, Flags: flags}
}

// The expectations follow pcap-filter(7); the integration test checks the
// same forms against tcpdump itself.
func TestParse(t *testing.T) {
	a := pk("10.0.0.1", 40000, "10.0.0.2", 80, FlagSYN)
	b := pk("10.0.0.2", 80, "10.0.0.1", 40000, FlagSYN|FlagACK)
	c := pk("10.1.0.5", 5555, "192.168.1.1", 443, FlagACK)
	d := pk("fd00::1", 1234, "fd00::2", 80, FlagRST)
	all := []Packet{a, b, c, d}
	for _, tc := range []struct {
		expr string
		want []Packet
	}{
		{"", all},
		{"tcp", all},
		{"ip", []Packet{a, b, c}},
		{"ip6", []Packet{d}},
		{"port 80", []Packet{a, b, d}},
		{"tcp port 80", []Packet{a, b, d}},
		{"src port 80", []Packet{b}},
		{"dst port 80", []Packet{a, d}},
		{"src or dst port 443", []Packet{c}},
		{"host 10.0.0.1", []Packet{a, b}},
		{"src host 10.0.0.1", []Packet{a}},
		{"dst 10.0.0.1", []Packet{b}},
		{"10.0.0.1", []Packet{a, b}},
		{"net 10.0.0.0/8", []Packet{a, b, c}},
		{"dst net 192.168.0.0/16", []Packet{c}},
		{"src and dst net 10.0.0.0/16", []Packet{a, b}},
		{"net fd00::/8", []Packet{d}},
		{"host fd00::2", []Packet{d}},
		{"port 80 or 443", []Packet{a, b, c, d}},
		{"not port 80", []Packet{c}},
		{"! port 80", []Packet{c}},
		{"port 80 and not host 10.0.0.2", []Packet{d}},
		{"not host 10.0.0.2 and 10.1.0.5", []Packet{c}},
		// and/or: equal precedence, left to right.
		{"host 10.0.0.1 or port 443 and ip6", nil},
		{"host 10.0.0.1 or (port 443 and ip6)", []Packet{a, b}},
		{"ip6 or port 443 and ip", []Packet{c}},
		{"tcp port 80 and host 10.0.0.1", []Packet{a, b}},
		{"ip and port 80", []Packet{a, b}},
		{"ip host 10.0.0.1", []Packet{a, b}},
		{"ip6 net fd00::/16", []Packet{d}},
		{"portrange 400-500", []Packet{c}},
		{"portrange 500-400", []Packet{c}},
		{"(port 80 && src port 40000) || dst port 443", []Packet{a, c}},
	} {
		prog, err := Parse(tc.expr)
		if err != nil {
			t.Errorf("%q: %v", tc.expr, err)
			continue
		}
		for _, p := range all {
			want := false
			for _, w := range tc.want {
				if w == p {
					want = true
				}
			}
			if got := prog.Match(p); got != want {
				t.Errorf("%q on %v: got %v, want %v (program %v)", tc.expr, p, got, want, prog)
			}
		}
	}
}

func TestParseRefuses(t *testing.T) {
	for _, tc := range []struct{ expr, says string }{
		{"udp port 53", "not supported"},
		{"icmp", "not supported"},
		{"tcp[13] & 2 != 0", "not supported"},
		{"host example.com", "names are not resolved"},
		{"port http", "names are not resolved"},
		{"port 70000", "0 to 65535"},
		{"net 10.0.0.1/8", "outside the prefix"},
		{"(port 80", "missing )"},
		{"port 80 and", "ends where a test"},
		{"port", "needs a value"},
		{"port 80 )", "unexpected"},
		{"ip6 host 10.0.0.1", "family"},
		{"ip port 80", "tcpdump refuses it too"},
		{"tcp host 10.0.0.1", "tcpdump refuses it too"},
		{"port 80 or 10.0.0.1", "not a number"},
		{"host 10.0.0.0/8", "not an IP address"},
		{"less 100", "not supported"},
		{"ether host 00:11:22:33:44:55", "not supported"},
		{strings.Repeat("port 1 or ", 20) + "port 2", "at most 32"},
	} {
		_, err := Parse(tc.expr)
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%q: got %v, want an error saying %q", tc.expr, err, tc.says)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: error is not one line: %q", tc.expr, err)
		}
	}
}

func TestFlagsProgram(t *testing.T) {
	p := Flags{Ports: []uint16{80, 443}, Hosts: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, Family: 4, TCPFlags: FlagSYN | FlagRST}.Program()
	if err := p.Check(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		p    Packet
		want bool
	}{
		{pk("10.0.0.1", 40000, "10.0.0.2", 80, FlagSYN), true},
		{pk("10.0.0.1", 40000, "10.0.0.2", 80, FlagACK), false},
		{pk("10.0.0.1", 40000, "10.0.0.2", 81, FlagSYN), false},
		{pk("11.0.0.1", 443, "12.0.0.2", 81, FlagRST), false},
		{pk("fd00::1", 443, "fd00::2", 81, FlagRST), false},
	} {
		if got := p.Match(tc.p); got != tc.want {
			t.Errorf("%v: got %v", tc.p, got)
		}
	}
	if f, err := ParseTCPFlags("syn,RST"); err != nil || f != FlagSYN|FlagRST {
		t.Errorf("ParseTCPFlags: %v %v", f, err)
	}
	if _, err := ParseTCPFlags("SYN,FOO"); err == nil {
		t.Error("ParseTCPFlags accepted FOO")
	}
}

// Whatever the input, Parse returns a program the kernel can run (or a
// one-line error), and the program never underflows its stack.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"port 80", "not (host 10.0.0.1 or net fd00::/8) and src port 1", "((", "port 80 or 443 and ! 10.0.0.1", "src and dst portrange 1-2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Parse(s)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("%q: error of several lines: %q", s, err)
			}
			return
		}
		if err := p.Check(); err != nil {
			t.Fatalf("%q: Parse returned an unrunnable program: %v", s, err)
		}
		depth := 0
		for _, in := range p {
			switch in.Op {
			case OpAnd, OpOr:
				depth--
			case OpNot:
			default:
				depth++
			}
			if depth < 1 {
				t.Fatalf("%q: the program underflows its stack: %v", s, p)
			}
		}
		if len(p) > 0 && depth != 1 {
			t.Fatalf("%q: the program leaves %d values: %v", s, depth, p)
		}
		p.Match(Packet{})
	})
}
