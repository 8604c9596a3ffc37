package probe

// Layer 3: frames built with gopacket run through the XDP and TC programs
// with BPF_PROG_TEST_RUN; counters, verdicts and SYN maps are checked
// against the oracle in frames_test.go. Each table case also states the
// verdict it expects, so the oracle is checked too.

import (
	"encoding/binary"
	"errors"
	"math/rand"
	"net/netip"
	"syscall"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

var hooks = []Hook{HookXDP, HookTC}

type frameCase struct {
	name  string
	frame []byte
	want  verdict
}

// patch returns a copy of frame with b written at off.
func patch(frame []byte, off int, b ...byte) []byte {
	c := append([]byte(nil), frame...)
	copy(c[off:], b)
	return c
}

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

// frameCases are the hand-built frames; every one of them is also a fuzz seed.
func frameCases(t testing.TB) []frameCase {
	const v4 = 14        // IPv4 header offset in an untagged frame
	const tcp4 = 14 + 20 // TCP header offset behind a plain IPv4 header
	const v6 = 14
	const tcp6 = 14 + 40

	eth4 := ethLayer(layers.EthernetTypeIPv4)
	eth6 := ethLayer(layers.EthernetTypeIPv6)
	syn := func() *layers.TCP { return tcpLayer(40000, 443, flagSYN, synOptions...) }
	syn4 := tcp4Frame(t, flagSYN)
	syn6 := tcp6Frame(t, flagSYN)

	routerAlert := layers.IPv4Option{OptionType: 0x94, OptionLength: 4, OptionData: []byte{0, 0}}
	var maxOpts []layers.IPv4Option // 40 option bytes: IHL 15
	for i := 0; i < 39; i++ {
		maxOpts = append(maxOpts, layers.IPv4Option{OptionType: 1})
	}
	maxOpts = append(maxOpts, layers.IPv4Option{OptionType: 0})

	frag4 := func(flags layers.IPv4Flag, off uint16) *layers.IPv4 {
		ip := ipv4Layer(layers.IPProtocolTCP)
		ip.Flags, ip.FragOffset = flags, off
		return ip
	}

	hbh, rt, dst, fr, ah := layers.IPProtocolIPv6HopByHop, layers.IPProtocolIPv6Routing,
		layers.IPProtocolIPv6Destination, layers.IPProtocolIPv6Fragment, layers.IPProtocolAH
	tcpP, udpP := layers.IPProtocolTCP, layers.IPProtocolUDP

	vlan := func(t layers.EthernetType) *layers.Dot1Q { return &layers.Dot1Q{VLANIdentifier: 100, Type: t} }
	qinq := ethLayer(layers.EthernetTypeQinQ)

	bigTCP6 := serialize(t, eth6, ipv6Layer(tcpP), tcpLayer(40001, 8443, flagSYN))
	binary.BigEndian.PutUint16(bigTCP6[v6+4:], 0)

	cases := []frameCase{
		// IPv4
		{"ipv4 syn", syn4, verdictTCP},
		{"ipv4 syn tcp options", serialize(t, eth4, ipv4Layer(tcpP), syn()), verdictTCP},
		{"ipv4 ack psh payload", serialize(t, eth4, ipv4Layer(tcpP), tcpLayer(443, 40000, flagACK|flagPSH), gopacket.Payload("hello")), verdictTCP},
		{"ipv4 options ihl 6", serialize(t, eth4, ipv4Layer(tcpP, routerAlert), syn()), verdictTCP},
		{"ipv4 options ihl 15", serialize(t, eth4, ipv4Layer(tcpP, maxOpts...), syn()), verdictTCP},
		{"ipv4 garbage options", patch(serialize(t, eth4, ipv4Layer(tcpP, routerAlert), syn()), v4+20, 0x44, 0), verdictTCP},
		{"ipv4 first fragment", serialize(t, eth4, frag4(layers.IPv4MoreFragments, 0), syn()), verdictTCP},
		{"ipv4 dont fragment", serialize(t, eth4, frag4(layers.IPv4DontFragment, 0), syn()), verdictTCP},
		{"ipv4 non-first fragment", serialize(t, eth4, frag4(layers.IPv4MoreFragments, 185), syn()), verdictNotTCP},
		{"ipv4 last fragment", serialize(t, eth4, frag4(0, 1), syn()), verdictNotTCP},
		{"ipv4 udp", serialize(t, eth4, ipv4Layer(udpP), &layers.UDP{SrcPort: 53, DstPort: 53}, gopacket.Payload("0123456789abcdef")), verdictNotTCP},
		{"ipv4 icmp", serialize(t, eth4, ipv4Layer(layers.IPProtocolICMPv4), &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0)}), verdictNotTCP},
		{"ipv4 garbage ethernet padding", append(append([]byte(nil), syn4[:tcp4+20]...), 0xff, 0x12, 0xff, 0xff, 0xff, 0xff), verdictTCP},
		{"ipv4 ihl 4", patch(syn4, v4, 0x44), verdictMalformed},
		{"ipv4 ihl 0", patch(syn4, v4, 0x40), verdictMalformed},
		{"ipv4 ihl past frame", patch(syn4, v4, 0x4f), verdictMalformed},
		{"ipv4 ihl past total length", patch(syn4, v4, 0x46, 0, 0, 20), verdictMalformed},
		{"ipv4 total length 0", patch(syn4, v4+2, 0, 0), verdictMalformed},
		{"ipv4 total length 19", patch(syn4, v4+2, 0, 19), verdictMalformed},
		{"ipv4 total length cuts tcp", patch(syn4, v4+2, 0, 30), verdictMalformed},
		{"ipv4 total length past frame", patch(syn4, v4+2, 0x05, 0xdc), verdictTCP},
		{"ipv4 version 6", patch(syn4, v4, 0x65), verdictMalformed},
		{"ipv4 udp bad ihl", patch(serialize(t, eth4, ipv4Layer(udpP), &layers.UDP{}), v4, 0x43), verdictMalformed},
		{"tcp data offset 4", patch(syn4, tcp4+12, 0x40), verdictMalformed},
		{"tcp data offset 0", patch(syn4, tcp4+12, 0x00), verdictMalformed},
		{"tcp data offset past frame", patch(syn4, tcp4+12, 0xf0), verdictMalformed},
		{"tcp garbage options", patch(serialize(t, eth4, ipv4Layer(tcpP), syn()), tcp4+20, 0x08, 0x00), verdictTCP},
		{"tcp header only 19 bytes", syn4[:tcp4+19], verdictMalformed},

		// IPv6
		{"ipv6 syn", syn6, verdictTCP},
		{"ipv6 syn tcp options", serialize(t, eth6, ipv6Layer(tcpP), syn()), verdictTCP},
		{"ipv6 hbh routing dstopts first fragment",
			serialize(t, eth6, ipv6Layer(hbh), ipv6Ext(rt, 0), ipv6Routing(dst), ipv6Ext(fr, 1), ipv6Frag(tcpP, 0, true), syn()), verdictTCP},
		{"ipv6 hbh routing dstopts non-first fragment",
			serialize(t, eth6, ipv6Layer(hbh), ipv6Ext(rt, 0), ipv6Routing(dst), ipv6Ext(fr, 1), ipv6Frag(tcpP, 100, false), syn()), verdictNotTCP},
		{"ipv6 atomic fragment", serialize(t, eth6, ipv6Layer(fr), ipv6Frag(tcpP, 0, false), syn()), verdictTCP},
		{"ipv6 ah", serialize(t, eth6, ipv6Layer(ah), ipv6AH(tcpP), syn()), verdictTCP},
		{"ipv6 six extension headers",
			serialize(t, eth6, ipv6Layer(hbh), ipv6Ext(dst, 0), ipv6Ext(rt, 0), ipv6Routing(fr), ipv6Frag(ah, 0, false), ipv6AH(dst), ipv6Ext(tcpP, 2), syn()), verdictTCP},
		{"ipv6 seven extension headers",
			serialize(t, eth6, ipv6Layer(hbh), ipv6Ext(dst, 0), ipv6Ext(rt, 0), ipv6Routing(fr), ipv6Frag(ah, 0, false), ipv6AH(dst), ipv6Ext(dst, 0), ipv6Ext(tcpP, 0), syn()), verdictNotTCP},
		{"ipv6 udp behind dstopts", serialize(t, eth6, ipv6Layer(dst), ipv6Ext(udpP, 0), &layers.UDP{SrcPort: 1, DstPort: 2}), verdictNotTCP},
		{"ipv6 no next header", serialize(t, eth6, ipv6Layer(layers.IPProtocolNoNextHeader)), verdictNotTCP},
		{"ipv6 icmpv6", serialize(t, eth6, ipv6Layer(layers.IPProtocolICMPv6), gopacket.Payload{128, 0, 0, 0, 0, 1, 0, 1}), verdictNotTCP},
		{"ipv6 version 4", patch(syn6, v6, 0x40), verdictMalformed},
		{"ipv6 payload length 0 (big tcp)", bigTCP6, verdictTCP},
		{"ipv6 payload length cuts tcp", patch(syn6, v6+4, 0, 12), verdictMalformed},
		{"ipv6 payload length past frame", patch(syn6, v6+4, 0x05, 0xdc), verdictTCP},
		{"ipv6 dstopts past frame, udp next",
			patch(serialize(t, eth6, ipv6Layer(dst), ipv6Ext(udpP, 0), &layers.UDP{}), tcp6+1, 200), verdictMalformed},
		{"ipv6 extension past payload length",
			patch(serialize(t, eth6, ipv6Layer(dst), ipv6Ext(tcpP, 0), syn()), v6+4, 0, 4), verdictMalformed},
		{"ipv6 truncated fragment header", serialize(t, eth6, ipv6Layer(fr), rawLayer{byte(tcpP), 0, 0, 0})[:tcp6+4], verdictMalformed},
		{"ipv6 tcp data offset 3", patch(syn6, tcp6+12, 0x30), verdictMalformed},

		// VLAN
		{"vlan ipv4 syn", serialize(t, ethLayer(layers.EthernetTypeDot1Q), vlan(layers.EthernetTypeIPv4), ipv4Layer(tcpP), syn()), verdictTCP},
		{"qinq ipv4 syn", serialize(t, qinq, vlan(layers.EthernetTypeDot1Q), vlan(layers.EthernetTypeIPv4), ipv4Layer(tcpP, routerAlert), syn()), verdictTCP},
		{"qinq ipv6 ext syn", serialize(t, qinq, vlan(layers.EthernetTypeDot1Q), vlan(layers.EthernetTypeIPv6), ipv6Layer(hbh), ipv6Ext(tcpP, 0), syn()), verdictTCP},
		{"qinq ipv6 udp", serialize(t, qinq, vlan(layers.EthernetTypeDot1Q), vlan(layers.EthernetTypeIPv6), ipv6Layer(udpP), &layers.UDP{}), verdictNotTCP},
		{"three vlan tags", serialize(t, qinq, vlan(layers.EthernetTypeDot1Q), vlan(layers.EthernetTypeDot1Q), vlan(layers.EthernetTypeIPv4), ipv4Layer(tcpP), syn()), verdictNotTCP},
		// gopacket pads frames to 60 bytes: cut them where the test wants.
		{"vlan truncated tag", serialize(t, ethLayer(layers.EthernetTypeDot1Q), rawLayer{0, 100, 8})[:14+3], verdictMalformed},
		{"qinq truncated inner tag", serialize(t, qinq, vlan(layers.EthernetTypeDot1Q), rawLayer{0, 100})[:14+4+2], verdictMalformed},
		{"vlan ipv4 bad ihl", serialize(t, ethLayer(layers.EthernetTypeDot1Q), vlan(layers.EthernetTypeIPv4), rawLayer(patch(syn4[v4:], 0, 0x42))), verdictMalformed},

		// Not IP
		{"arp", serialize(t, ethLayer(layers.EthernetTypeARP), &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
			HwAddressSize: 6, ProtAddressSize: 4, Operation: 1, SourceHwAddress: macSrc, SourceProtAddress: v4Src,
			DstHwAddress: make([]byte, 6), DstProtAddress: v4Dst}), verdictNotTCP},
		{"802.3 llc", serialize(t, &layers.Ethernet{SrcMAC: macSrc, DstMAC: macDst, EthernetType: layers.EthernetTypeLLC, Length: 3},
			&layers.LLC{DSAP: 0x42, SSAP: 0x42, Control: 3}), verdictNotTCP},
		{"ethernet only", serialize(t, eth4)[:14], verdictMalformed},
		{"ipv6 ethertype, no header", serialize(t, eth6)[:14], verdictMalformed},
		{"unknown ethertype", serialize(t, ethLayer(0x88b5), gopacket.Payload(syn4[14:])), verdictNotTCP},
	}

	// Garbage: random bytes, and random bytes behind each IP ethertype.
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 24; i++ {
		b := make([]byte, 14+rng.Intn(120))
		rng.Read(b)
		want := oracle(b).verdict // random: whatever the oracle says, the programs must agree
		switch i % 3 {
		case 1:
			copy(b[12:], be16(uint16(layers.EthernetTypeIPv4)))
			b[14] = 0x45
			want = oracle(b).verdict
		case 2:
			copy(b[12:], be16(uint16(layers.EthernetTypeIPv6)))
			want = oracle(b).verdict
		}
		cases = append(cases, frameCase{"garbage", b, want})
	}
	return cases
}

func TestPacketPathFrames(t *testing.T) {
	tp := loadTestPath(t, PacketConfig{TrackSYN: true, DropSYNPorts: []uint16{25, 8443}}, 2)
	for _, c := range frameCases(t) {
		t.Run(c.name, func(t *testing.T) {
			if got := oracle(c.frame); got.verdict != c.want {
				t.Fatalf("oracle says %v, the case expects %v", got, c.want)
			}
			for _, slot := range []int{0, 1} {
				for _, hook := range hooks {
					_, err := tp.checkFrame(t, slot, hook, c.frame, true)
					if hook == HookTC && errors.Is(err, errNotRunnable) {
						continue // XDP ran it
					}
					if err != nil {
						t.Errorf("slot %d: %v\nframe % x", slot, err, c.frame)
					}
				}
			}
		})
	}
}

// Every strict prefix of a frame that ends with its TCP header is
// malformed, whatever the headers before it: checked at every length.
func TestPacketPathTruncated(t *testing.T) {
	tp := loadTestPath(t, PacketConfig{TrackSYN: true, DropSYNPorts: []uint16{443}}, 1)
	n := 0
	for _, c := range frameCases(t) {
		exp := oracle(c.frame)
		for l := 0; l < len(c.frame); l++ {
			prefix := c.frame[:l]
			// A TCP frame without payload or padding: no prefix can hold a
			// complete TCP header.
			if c.want == verdictTCP && exp.verdict == verdictTCP && headerOnly(c.frame) {
				if got := oracle(prefix).verdict; got != verdictMalformed {
					t.Errorf("%s cut to %d bytes: oracle says %v, want malformed", c.name, l, got)
				}
			}
			for _, hook := range hooks {
				_, err := tp.checkFrame(t, 0, hook, prefix, false)
				if errors.Is(err, errNotRunnable) {
					continue
				}
				n++
				if err != nil {
					t.Errorf("%s cut to %d bytes: %v\nframe % x", c.name, l, err, prefix)
				}
			}
		}
	}
	if n < 5000 {
		t.Errorf("only %d truncated frames ran", n)
	}
	t.Logf("%d truncated frames ran", n)
}

// headerOnly reports whether a TCP frame ends exactly with its TCP header:
// gopacket's layers, all complete, account for every byte.
func headerOnly(frame []byte) bool {
	pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	tcp, ok := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if !ok || len(tcp.Payload) != 0 || pkt.ErrorLayer() != nil {
		return false
	}
	n := 0
	for _, l := range pkt.Layers() {
		n += len(l.LayerContents())
	}
	return n == len(frame)
}

// All 256 flag bytes over IPv4 and QinQ IPv6 with extension headers, each
// checked against the oracle, and the totals checked against counts worked
// out by hand.
func TestPacketPathAllFlags(t *testing.T) {
	tp := loadTestPath(t, PacketConfig{TrackSYN: true, DropSYNPorts: []uint16{443}}, 4)
	frames := map[string]func(uint8) []byte{
		"ipv4": func(f uint8) []byte {
			return serialize(t, ethLayer(layers.EthernetTypeIPv4), ipv4Layer(layers.IPProtocolTCP), tcpLayer(1234, 443, f, synOptions...))
		},
		"qinq ipv6": func(f uint8) []byte {
			return serialize(t, ethLayer(layers.EthernetTypeQinQ), &layers.Dot1Q{VLANIdentifier: 7, Type: layers.EthernetTypeDot1Q},
				&layers.Dot1Q{VLANIdentifier: 8, Type: layers.EthernetTypeIPv6}, ipv6Layer(layers.IPProtocolIPv6HopByHop),
				ipv6Ext(layers.IPProtocolIPv6Fragment, 0), ipv6Frag(layers.IPProtocolTCP, 0, true), tcpLayer(1234, 443, f))
		},
	}
	slot := 0
	for name, build := range frames {
		for _, hook := range hooks {
			for f := 0; f < 256; f++ {
				frame := build(uint8(f))
				exp, err := tp.checkFrame(t, slot, hook, frame, false)
				if err != nil {
					t.Errorf("%s flags %#02x: %v", name, f, err)
				}
				if exp.verdict != verdictTCP || exp.flags != uint8(f) {
					t.Fatalf("%s flags %#02x: oracle says %v", name, f, exp)
				}
			}
			// Of 256 flag bytes, each single flag is set in 128, a pair of
			// flags in 64, three in 32; one byte is 0. All SYN-without-ACK
			// go to port 443 and are dropped.
			want := FlagCounters{
				Packets: 256, TcpPackets: 256,
				Fin: 128, Syn: 128, Rst: 128, Psh: 128, Ack: 128, Urg: 128, Ece: 128, Cwr: 128,
				SynFin: 64, SynRst: 64, NullFlags: 1, Xmas: 32,
				SynNoAck: 64, SynAck: 64, Dropped: 64,
			}
			got, err := tp.pp.Counters(uint32(slot))
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("%s %s totals\n got %s\nwant %s", name, hook, fmtCounters(got), fmtCounters(want))
			}
			slot++
		}
	}
	// 64 SYN-without-ACK per slot, 4 slots, one tuple each (counted 64 times).
	tuples, err := tp.pp.SYNTuples()
	if err != nil {
		t.Fatal(err)
	}
	if len(tuples) != 4 {
		t.Errorf("SYN tuples: got %d, want one per slot: %v", len(tuples), tuples)
	}
	for k, v := range tuples {
		if v != 64 || k.Sport != 1234 || k.Dport != 443 {
			t.Errorf("SYN tuple %+v counted %d, want 1234->443 counted 64", k, v)
		}
	}
}

// --drop-syn-port: SYN without ACK to a listed port is dropped and counted;
// SYN-ACK to it and SYN to other ports pass. Addresses in the maps are the
// ones gopacket decoded.
func TestSYNDropPorts(t *testing.T) {
	type step struct {
		name  string
		frame []byte
		drop  bool
	}
	v6 := func(sport, dport uint16, f uint8) []byte {
		return serialize(t, ethLayer(layers.EthernetTypeIPv6), ipv6Layer(layers.IPProtocolIPv6Destination),
			ipv6Ext(layers.IPProtocolTCP, 1), tcpLayer(sport, dport, f, synOptions...))
	}
	v4 := func(sport, dport uint16, f uint8) []byte {
		return serialize(t, ethLayer(layers.EthernetTypeIPv4), ipv4Layer(layers.IPProtocolTCP), tcpLayer(sport, dport, f))
	}
	steps := []step{
		{"v4 syn to 22", v4(50000, 22, flagSYN), true},
		{"v4 syn+ece+cwr to 22", v4(50001, 22, flagSYN|flagECE|flagCWR), true},
		{"v4 syn+fin to 22", v4(50002, 22, flagSYN|flagFIN), true},
		{"v4 syn-ack to 22", v4(50000, 22, flagSYN|flagACK), false},
		{"v4 ack to 22", v4(50000, 22, flagACK), false},
		{"v4 syn to 23", v4(50000, 23, flagSYN), false},
		{"v4 syn from 22", v4(22, 50000, flagSYN), false},
		{"v6 syn to 65535", v6(50000, 65535, flagSYN), true},
		{"v6 syn to 64", v6(50000, 64, flagSYN), true},
		{"v6 syn to 63", v6(50000, 63, flagSYN), false},
		{"v6 syn to 65", v6(50000, 65, flagSYN), false},
		{"v6 syn-ack to 65535", v6(50000, 65535, flagSYN|flagACK), false},
	}
	ports := []uint16{22, 64, 65535}
	for _, track := range []bool{true, false} {
		tp := loadTestPath(t, PacketConfig{TrackSYN: track, DropSYNPorts: ports}, 1)
		for _, hook := range hooks {
			for _, s := range steps {
				exp, err := tp.checkFrame(t, 0, hook, s.frame, true)
				if err != nil {
					t.Errorf("track %v %s: %v", track, s.name, err)
				}
				_, drop := expectCounters(exp, tp.dropPorts)
				if drop != s.drop {
					t.Errorf("track %v %s: oracle drop %v, want %v", track, s.name, drop, s.drop)
				}
			}
		}
		m := tp.synMaps(t)
		if !track {
			if len(m.tuples)+len(m.sources) != 0 {
				t.Errorf("TrackSYN off but SYN maps hold %v %v", m.tuples, m.sources)
			}
			continue
		}
		// Tuples as built above, spelled out, not from the oracle.
		src4, dst4 := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("198.51.100.20")
		src6, dst6 := netip.MustParseAddr("2001:db8::a"), netip.MustParseAddr("2001:db8:ffff::14")
		want := map[SYNTuple]uint64{
			{Src: src4, Dst: dst4, Sport: 50000, Dport: 22}:    2,
			{Src: src4, Dst: dst4, Sport: 50001, Dport: 22}:    2,
			{Src: src4, Dst: dst4, Sport: 50002, Dport: 22}:    2,
			{Src: src4, Dst: dst4, Sport: 50000, Dport: 23}:    2,
			{Src: src4, Dst: dst4, Sport: 22, Dport: 50000}:    2,
			{Src: src6, Dst: dst6, Sport: 50000, Dport: 65535}: 2,
			{Src: src6, Dst: dst6, Sport: 50000, Dport: 64}:    2,
			{Src: src6, Dst: dst6, Sport: 50000, Dport: 63}:    2,
			{Src: src6, Dst: dst6, Sport: 50000, Dport: 65}:    2,
		}
		for k, v := range want {
			if m.tuples[k] != v {
				t.Errorf("SYN tuple %+v: count %d, want %d", k, m.tuples[k], v)
			}
		}
		if len(m.tuples) != len(want) {
			t.Errorf("SYN tuples: %d entries, want %d: %v", len(m.tuples), len(want), m.tuples)
		}
		if m.sources[SYNSource{Addr: src4}] != 10 || m.sources[SYNSource{Addr: src6}] != 8 || len(m.sources) != 2 {
			t.Errorf("SYN sources %v, want %v: 10 and %v: 8", m.sources, src4, src6)
		}
		c, err := tp.pp.Counters(0)
		if err != nil {
			t.Fatal(err)
		}
		if c.Dropped != 10 || c.SynNoAck != 18 || c.SynAck != 4 {
			t.Errorf("counters %s: want Dropped 10, SynNoAck 18, SynAck 4", fmtCounters(c))
		}
	}
}

// kernelRefuses must describe the kernel exactly: the frames it lists are
// the ones checkFrame cannot run, and every other frame must run.
func TestKernelRefusesShortFrames(t *testing.T) {
	tp := loadTestPath(t, PacketConfig{}, 1)
	frames := [][]byte{tcp4Frame(t, flagSYN), tcp6Frame(t, flagSYN),
		serialize(t, ethLayer(layers.EthernetTypeDot1Q), &layers.Dot1Q{Type: layers.EthernetTypeIPv4}, ipv4Layer(layers.IPProtocolTCP), tcpLayer(1, 2, 0))}
	for _, frame := range frames {
		for _, hook := range hooks {
			for l := 0; l <= 60; l++ {
				_, err := tp.pp.Program(0, hook).Run(&ebpf.RunOptions{Data: frame[:l]})
				if want := kernelRefuses(hook, frame[:l]); want != errors.Is(err, syscall.EINVAL) || (!want && err != nil) {
					t.Errorf("%s with %d bytes of % x: got %v, kernelRefuses says %v", hook, l, frame[:12+min(l, 14)-12], err, want)
				}
			}
		}
	}
}
