package pcapout

import (
	"fmt"
	"strconv"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Line formats p as tcpdump -nn -S prints it (with -i any's interface
// and direction): time, addresses and ports, flags as [S.], absolute
// sequence numbers, ack, window, options, payload length.
//
//	12:34:56.789012 veth0 In  IP 10.0.0.1.40000 > 10.0.0.2.80: Flags [S], seq 1000, win 64240, options [mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7], length 0
func Line(b []byte, p Packet, iface string) []byte {
	b = p.Time.AppendFormat(b, "15:04:05.000000")
	if iface != "" {
		b = fmt.Appendf(b, " %s %-3s", iface, p.Dir)
	}
	pkt := gopacket.NewPacket(p.Data, layers.LayerTypeEthernet, gopacket.DecodeOptions{Lazy: true, NoCopy: true})
	var src, dst, proto string
	var ipPayload = -1
	switch ip := pkt.NetworkLayer().(type) {
	case *layers.IPv4:
		proto, src, dst = "IP", ip.SrcIP.String(), ip.DstIP.String()
		ipPayload = int(ip.Length) - int(ip.IHL)*4
	case *layers.IPv6:
		proto, src, dst = "IP6", ip.SrcIP.String(), ip.DstIP.String()
		ipPayload = int(ip.Length)
		// Extension headers between the fixed header and TCP.
		if tcp, ok := pkt.TransportLayer().(*layers.TCP); ok && len(ip.Payload) >= len(tcp.Contents) {
			ipPayload -= len(ip.Payload) - len(tcp.Contents) - len(tcp.Payload)
		}
	default:
		return fmt.Appendf(b, " frame of %d bytes, not IP\n", p.OrigLen)
	}
	tcp, ok := pkt.TransportLayer().(*layers.TCP)
	if !ok {
		return fmt.Appendf(b, " %s %s > %s: not TCP or truncated, length %d\n", proto, src, dst, p.OrigLen)
	}
	b = fmt.Appendf(b, " %s %s.%d > %s.%d: Flags [%s]", proto, src, tcp.SrcPort, dst, tcp.DstPort, flagString(tcp))
	payload := ipPayload - int(tcp.DataOffset)*4
	if payload < 0 {
		payload = 0
	}
	if payload > 0 || tcp.SYN || tcp.FIN || tcp.RST {
		b = append(b, ", seq "...)
		b = strconv.AppendUint(b, uint64(tcp.Seq), 10)
		if payload > 0 {
			b = append(b, ':')
			b = strconv.AppendUint(b, uint64(tcp.Seq)+uint64(payload), 10)
		}
	}
	if tcp.ACK {
		b = append(b, ", ack "...)
		b = strconv.AppendUint(b, uint64(tcp.Ack), 10)
	}
	b = append(b, ", win "...)
	b = strconv.AppendUint(b, uint64(tcp.Window), 10)
	if len(tcp.Options) > 0 {
		b = append(b, ", options ["...)
		for i, o := range tcp.Options {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendOption(b, o)
		}
		b = append(b, ']')
	}
	b = append(b, ", length "...)
	b = strconv.AppendInt(b, int64(payload), 10)
	if p.Comment != "" {
		b = append(b, ", "...)
		b = append(b, p.Comment...)
	}
	return append(b, '\n')
}

// flagString orders the letters as tcpdump does: F S R P . U E W.
func flagString(t *layers.TCP) string {
	var s []byte
	for _, f := range []struct {
		on bool
		c  byte
	}{{t.FIN, 'F'}, {t.SYN, 'S'}, {t.RST, 'R'}, {t.PSH, 'P'}, {t.ACK, '.'}, {t.URG, 'U'}, {t.ECE, 'E'}, {t.CWR, 'W'}} {
		if f.on {
			s = append(s, f.c)
		}
	}
	if len(s) == 0 {
		return "none"
	}
	return string(s)
}

func appendOption(b []byte, o layers.TCPOption) []byte {
	d := o.OptionData
	switch o.OptionType {
	case layers.TCPOptionKindEndList:
		return append(b, "eol"...)
	case layers.TCPOptionKindNop:
		return append(b, "nop"...)
	case layers.TCPOptionKindMSS:
		if len(d) == 2 {
			return fmt.Appendf(b, "mss %d", uint16(d[0])<<8|uint16(d[1]))
		}
	case layers.TCPOptionKindWindowScale:
		if len(d) == 1 {
			return fmt.Appendf(b, "wscale %d", d[0])
		}
	case layers.TCPOptionKindSACKPermitted:
		return append(b, "sackOK"...)
	case layers.TCPOptionKindSACK:
		b = fmt.Appendf(b, "sack %d", len(d)/8)
		for i := 0; i+8 <= len(d); i += 8 {
			b = fmt.Appendf(b, " {%d:%d}", be32(d[i:]), be32(d[i+4:]))
		}
		return b
	case layers.TCPOptionKindTimestamps:
		if len(d) == 8 {
			return fmt.Appendf(b, "TS val %d ecr %d", be32(d), be32(d[4:]))
		}
	}
	return fmt.Appendf(b, "unknown-%d", uint8(o.OptionType))
}

func be32(d []byte) uint32 {
	return uint32(d[0])<<24 | uint32(d[1])<<16 | uint32(d[2])<<8 | uint32(d[3])
}
