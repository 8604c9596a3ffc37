package probe

// Frames for the packet-path tests, built with gopacket, and the oracle that
// says what the packet path must make of any frame, derived from gopacket's
// own decoding. Where gopacket is stricter or more lenient than the parser's
// documented semantics (bpf/parse.h), the oracle says so in a comment and
// encodes the parser's rule.

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

var (
	macSrc = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	macDst = net.HardwareAddr{0x02, 0, 0, 0, 0, 2}

	v4Src = net.IP{192, 0, 2, 10}
	v4Dst = net.IP{198, 51, 100, 20}
	v6Src = net.ParseIP("2001:db8::a")
	v6Dst = net.ParseIP("2001:db8:ffff::14")
)

// TCP flag bits as they sit in byte 13 of the TCP header.
const (
	flagFIN = 0x01
	flagSYN = 0x02
	flagRST = 0x04
	flagPSH = 0x08
	flagACK = 0x10
	flagURG = 0x20
	flagECE = 0x40
	flagCWR = 0x80
)

// rawLayer serializes bytes as they are: IPv6 extension headers gopacket
// cannot write, deliberately broken headers, garbage.
type rawLayer []byte

func (r rawLayer) LayerType() gopacket.LayerType { return gopacket.LayerTypePayload }

func (r rawLayer) SerializeTo(b gopacket.SerializeBuffer, _ gopacket.SerializeOptions) error {
	buf, err := b.PrependBytes(len(r))
	if err != nil {
		return err
	}
	copy(buf, r)
	return nil
}

// ipv6Ext is an extension header of 8*(hdrlen+1) bytes (hop-by-hop, routing,
// destination options) with PadN filling its body.
func ipv6Ext(next layers.IPProtocol, hdrlen uint8) rawLayer {
	b := make([]byte, 8*(int(hdrlen)+1))
	b[0], b[1] = byte(next), hdrlen
	b[2], b[3] = 1, byte(len(b)-4) // PadN over the rest
	return b
}

// ipv6Routing is a type-0-free routing header (segments left 0) with one address slot.
func ipv6Routing(next layers.IPProtocol) rawLayer {
	b := make([]byte, 24)
	b[0], b[1], b[2], b[3] = byte(next), 2, 4, 0
	return b
}

// ipv6Frag is a fragment header; offset is in 8-byte units.
func ipv6Frag(next layers.IPProtocol, offset uint16, more bool) rawLayer {
	b := make([]byte, 8)
	b[0] = byte(next)
	v := offset << 3
	if more {
		v |= 1
	}
	binary.BigEndian.PutUint16(b[2:], v)
	binary.BigEndian.PutUint32(b[4:], 0xabcd)
	return b
}

// ipv6AH is an authentication header with a 12-byte ICV: (hdrlen+2)*4 = 24 bytes.
func ipv6AH(next layers.IPProtocol) rawLayer {
	b := make([]byte, 24)
	b[0], b[1] = byte(next), 4
	return b
}

func tcpLayer(sport, dport uint16, flags uint8, opts ...layers.TCPOption) *layers.TCP {
	return &layers.TCP{
		SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport),
		Seq: 1000, Ack: 2000, Window: 64240,
		FIN: flags&flagFIN != 0, SYN: flags&flagSYN != 0, RST: flags&flagRST != 0,
		PSH: flags&flagPSH != 0, ACK: flags&flagACK != 0, URG: flags&flagURG != 0,
		ECE: flags&flagECE != 0, CWR: flags&flagCWR != 0,
		Options: opts,
	}
}

var synOptions = []layers.TCPOption{
	{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}},
	{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2},
	{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: make([]byte, 8)},
	{OptionType: layers.TCPOptionKindNop},
	{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}},
}

func ethLayer(t layers.EthernetType) *layers.Ethernet {
	return &layers.Ethernet{SrcMAC: macSrc, DstMAC: macDst, EthernetType: t}
}

func ipv4Layer(proto layers.IPProtocol, opts ...layers.IPv4Option) *layers.IPv4 {
	return &layers.IPv4{Version: 4, TTL: 64, Protocol: proto, SrcIP: v4Src, DstIP: v4Dst, Options: opts}
}

func ipv6Layer(next layers.IPProtocol) *layers.IPv6 {
	return &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: next, SrcIP: v6Src, DstIP: v6Dst}
}

// serialize writes the layers with lengths fixed up; no checksums, the
// packet path does not read them.
func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, ls...); err != nil {
		t.Fatalf("serialize frame: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func tcp4Frame(t testing.TB, flags uint8) []byte {
	return serialize(t, ethLayer(layers.EthernetTypeIPv4), ipv4Layer(layers.IPProtocolTCP), tcpLayer(40000, 443, flags))
}

func tcp6Frame(t testing.TB, flags uint8) []byte {
	return serialize(t, ethLayer(layers.EthernetTypeIPv6), ipv6Layer(layers.IPProtocolTCP), tcpLayer(40001, 8443, flags))
}

// ---------------------------------------------------------------- oracle

type verdict int

const (
	verdictNotTCP verdict = iota
	verdictTCP
	verdictMalformed
)

func (v verdict) String() string {
	return [...]string{"not-TCP", "TCP", "malformed"}[v]
}

// parsed is what the packet path must make of one frame.
type parsed struct {
	verdict      verdict
	why          string // which rule decided, for failure messages
	flags        uint8
	src, dst     netip.Addr
	sport, dport uint16
}

func (p parsed) String() string {
	if p.verdict != verdictTCP {
		return fmt.Sprintf("%v (%s)", p.verdict, p.why)
	}
	return fmt.Sprintf("TCP %v:%d -> %v:%d flags %#02x", p.src, p.sport, p.dst, p.dport, p.flags)
}

func malformed(format string, args ...any) parsed {
	return parsed{verdict: verdictMalformed, why: fmt.Sprintf(format, args...)}
}

func notTCP(why string) parsed { return parsed{verdict: verdictNotTCP, why: why} }

// Limits of the parser (bpf/parse.h MAX_VLAN_TAGS, MAX_IPV6_EXT_HDRS).
const (
	maxVLANTags   = 2
	maxIPv6ExtHdr = 6
)

// oracle decodes frame with gopacket and applies the parser's rules.
func oracle(frame []byte) parsed {
	pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	eth, ok := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if !ok {
		return malformed("shorter than an Ethernet header")
	}
	etype := eth.EthernetType // gopacket turns 802.3 length fields into LLC: not IP either way
	off := len(eth.Contents)

	var tags []*layers.Dot1Q
	for _, l := range pkt.Layers() {
		if d, ok := l.(*layers.Dot1Q); ok {
			tags = append(tags, d)
		}
	}
	// gopacket peels any number of tags; the parser two, and calls what
	// follows a third tag not-TCP.
	for i := 0; i < maxVLANTags && (etype == layers.EthernetTypeDot1Q || etype == layers.EthernetTypeQinQ); i++ {
		if i >= len(tags) {
			return malformed("truncated VLAN tag %d", i+1)
		}
		etype = tags[i].Type
		off += len(tags[i].Contents)
	}

	switch etype {
	case layers.EthernetTypeIPv4:
		return oracleIPv4(frame[off:])
	case layers.EthernetTypeIPv6:
		return oracleIPv6(frame[off:])
	case layers.EthernetTypeDot1Q, layers.EthernetTypeQinQ:
		return notTCP("more than two VLAN tags")
	}
	return notTCP("ethertype " + etype.String())
}

// withNOPOptions returns a copy of hdr with bytes [20, end) set to NOP (1 in
// both IPv4 and TCP). The parser skips options by the header length and
// never reads them; gopacket rejects option encodings it dislikes, which
// must not make a frame malformed here.
func withNOPOptions(hdr []byte, end int) []byte {
	c := append([]byte(nil), hdr...)
	for i := 20; i < end && i < len(c); i++ {
		c[i] = 1
	}
	return c
}

func oracleIPv4(b []byte) parsed {
	ihl := 0
	if len(b) > 0 {
		ihl = int(b[0]&0x0f) * 4
	}
	var ip layers.IPv4
	if err := ip.DecodeFromBytes(withNOPOptions(b, ihl), gopacket.NilDecodeFeedback); err != nil {
		return malformed("ipv4: %v", err)
	}
	// gopacket does not look at the version nibble; the parser requires 4.
	if ip.Version != 4 {
		return malformed("ipv4 version %d", ip.Version)
	}
	// gopacket reads total length 0 as "TSO, use the frame length"; to the
	// parser it is a total length shorter than the header.
	if binary.BigEndian.Uint16(b[2:4]) == 0 {
		return malformed("ipv4 total length 0")
	}
	if ip.Protocol != layers.IPProtocolTCP {
		return notTCP("ip protocol " + ip.Protocol.String())
	}
	// gopacket hands every fragment, the first too, to its Fragment layer;
	// the parser reads TCP from a first fragment (offset 0, MF set) and
	// passes the others untouched.
	if ip.FragOffset != 0 {
		return notTCP("ipv4 non-first fragment")
	}
	src, _ := netip.AddrFromSlice(ip.SrcIP)
	dst, _ := netip.AddrFromSlice(ip.DstIP)
	// ip.Payload ends where the total length says (or at the frame end):
	// a TCP header past the datagram's end is inconsistent.
	return oracleTCP(ip.Payload, src, dst)
}

func isIPv6Ext(p layers.IPProtocol) bool {
	switch p {
	case layers.IPProtocolIPv6HopByHop, layers.IPProtocolIPv6Routing, layers.IPProtocolIPv6Destination,
		layers.IPProtocolIPv6Fragment, layers.IPProtocolAH:
		return true
	}
	return false
}

func oracleIPv6(b []byte) parsed {
	var ip layers.IPv6
	err := ip.DecodeFromBytes(b, gopacket.NilDecodeFeedback)
	if len(b) < 40 {
		return malformed("ipv6: %v", err)
	}
	// Past the fixed 40 bytes gopacket's errors are not the parser's: it
	// rejects payload length 0 without a jumbo option (BIG TCP GRO packets
	// carry 0) and judges hop-by-hop option TLVs, which the parser skips
	// by length. The fixed-header fields are decoded either way.
	if ip.Version != 6 {
		return malformed("ipv6 version %d", ip.Version)
	}
	// Payload length 0 (jumbogram, BIG TCP) leaves the frame as the only bound.
	room, bounded := int(ip.Length), ip.Length != 0
	rest := b[40:]
	nh := ip.NextHeader
	for i := 0; i < maxIPv6ExtHdr && isIPv6Ext(nh); i++ {
		var hdrLen int
		var next layers.IPProtocol
		switch nh {
		case layers.IPProtocolIPv6Fragment:
			fp := gopacket.NewPacket(rest, layers.LayerTypeIPv6Fragment, gopacket.Default)
			frag, ok := fp.Layer(layers.LayerTypeIPv6Fragment).(*layers.IPv6Fragment)
			if !ok {
				return malformed("truncated ipv6 fragment header")
			}
			if frag.FragmentOffset != 0 {
				return notTCP("ipv6 non-first fragment")
			}
			hdrLen, next = len(frag.Contents), frag.NextHeader
		case layers.IPProtocolAH:
			// gopacket's IPSecAH decoder also demands the 12-byte fixed part;
			// the parser, like the kernel's ipv6_skip_exthdr, reads only
			// next header and length: (len+2)*4 bytes (RFC 4302).
			if len(rest) < 2 {
				return malformed("truncated ipv6 AH")
			}
			hdrLen, next = (int(rest[1])+2)*4, layers.IPProtocol(rest[0])
			if hdrLen > len(rest) {
				return malformed("truncated ipv6 AH")
			}
		default:
			var skip layers.IPv6ExtensionSkipper
			if err := skip.DecodeFromBytes(rest, gopacket.NilDecodeFeedback); err != nil {
				return malformed("ipv6 extension %v: %v", nh, err)
			}
			hdrLen, next = len(skip.Contents), skip.NextHeader
		}
		if bounded {
			if hdrLen > room {
				return malformed("ipv6 extension headers exceed the payload length")
			}
			room -= hdrLen
		}
		rest, nh = rest[hdrLen:], next
	}
	if nh != layers.IPProtocolTCP {
		return notTCP("ipv6 next header " + nh.String())
	}
	if bounded && room < len(rest) {
		rest = rest[:room] // Ethernet padding is not TCP
	}
	src, _ := netip.AddrFromSlice(ip.SrcIP)
	dst, _ := netip.AddrFromSlice(ip.DstIP)
	return oracleTCP(rest, src, dst)
}

func oracleTCP(b []byte, src, dst netip.Addr) parsed {
	end := 0
	if len(b) > 12 {
		end = int(b[12]>>4) * 4
	}
	var tcp layers.TCP
	if err := tcp.DecodeFromBytes(withNOPOptions(b, end), gopacket.NilDecodeFeedback); err != nil {
		return malformed("tcp: %v", err)
	}
	var flags uint8
	for bit, set := range map[uint8]bool{
		flagFIN: tcp.FIN, flagSYN: tcp.SYN, flagRST: tcp.RST, flagPSH: tcp.PSH,
		flagACK: tcp.ACK, flagURG: tcp.URG, flagECE: tcp.ECE, flagCWR: tcp.CWR,
	} {
		if set {
			flags |= bit
		}
	}
	return parsed{
		verdict: verdictTCP, flags: flags,
		src: src.Unmap(), dst: dst.Unmap(),
		sport: uint16(tcp.SrcPort), dport: uint16(tcp.DstPort),
	}
}

// expectCounters is what one packet adds to its interface's counters, and
// whether the packet path drops it, given which ports drop SYNs.
func expectCounters(p parsed, dropPorts map[uint16]bool) (FlagCounters, bool) {
	c := FlagCounters{Packets: 1}
	switch p.verdict {
	case verdictMalformed:
		c.Malformed = 1
		return c, false
	case verdictNotTCP:
		return c, false
	}
	f := p.flags
	one := func(mask uint8) uint64 {
		if f&mask == mask {
			return 1
		}
		return 0
	}
	c.TcpPackets = 1
	c.Fin, c.Syn, c.Rst, c.Psh = one(flagFIN), one(flagSYN), one(flagRST), one(flagPSH)
	c.Ack, c.Urg, c.Ece, c.Cwr = one(flagACK), one(flagURG), one(flagECE), one(flagCWR)
	if f == 0 {
		c.NullFlags = 1
	}
	c.Xmas = one(flagFIN | flagPSH | flagURG)
	c.SynFin = one(flagSYN | flagFIN)
	c.SynRst = one(flagSYN | flagRST)
	c.SynAck = one(flagSYN | flagACK)
	if !p.isConnAttempt() {
		return c, false
	}
	c.SynNoAck = 1
	if dropPorts[p.dport] {
		c.Dropped = 1
		return c, true
	}
	return c, false
}

// isConnAttempt: SYN without ACK, the only packets tracked and dropped.
func (p parsed) isConnAttempt() bool {
	return p.verdict == verdictTCP && p.flags&flagSYN != 0 && p.flags&flagACK == 0
}
