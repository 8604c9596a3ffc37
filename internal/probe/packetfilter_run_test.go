package probe

// The packet filter against tcpdump's: the same frames, written to a pcap
// file, go through `tcpdump -r in -w out EXPR` and through the XDP and TC
// programs loaded with the compiled expression; both must select exactly
// the same frames. tcpdump's own filter compiler is the oracle.

import (
	"bytes"
	"fmt"
	"math/rand"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/tcplens/tcplens/internal/pfilter"
	"github.com/tcplens/tcplens/internal/testutil"
)

// filterFrames are 240 TCP frames over a few addresses, ports and flags, each
// with its own sequence number so that every one is distinct.
func filterFrames(t testing.TB) [][]byte {
	v4 := []string{"10.0.0.1", "10.0.0.2", "10.1.2.3", "192.168.1.1"}
	v6 := []string{"fd00::1", "fd00::2", "2001:db8::5", "fd00:1::9"}
	ports := []uint16{80, 443, 1000, 40000, 8080}
	flags := []uint8{flagSYN, flagSYN | flagACK, flagACK, flagRST, flagFIN | flagACK, flagPSH | flagACK}
	rng := rand.New(rand.NewSource(11))
	var out [][]byte
	for i := 0; i < 240; i++ {
		addrs, eth := v4, layers.EthernetTypeIPv4
		if i%3 == 2 {
			addrs, eth = v6, layers.EthernetTypeIPv6
		}
		tcp := tcpLayer(ports[rng.Intn(len(ports))], ports[rng.Intn(len(ports))], flags[rng.Intn(len(flags))])
		tcp.Seq = uint32(i)
		src, dst := net.ParseIP(addrs[rng.Intn(4)]), net.ParseIP(addrs[rng.Intn(4)])
		var ip gopacket.SerializableLayer
		if eth == layers.EthernetTypeIPv4 {
			l := ipv4Layer(layers.IPProtocolTCP)
			l.SrcIP, l.DstIP = src.To4(), dst.To4()
			ip = l
			tcp.SetNetworkLayerForChecksum(l)
		} else {
			l := ipv6Layer(layers.IPProtocolTCP)
			l.SrcIP, l.DstIP = src, dst
			ip = l
		}
		out = append(out, serialize(t, ethLayer(eth), ip, tcp))
	}
	return out
}

// tcpdumpSelects runs tcpdump's filter over frames and returns which it kept.
func tcpdumpSelects(t *testing.T, dir string, frames [][]byte, expr string) []bool {
	t.Helper()
	in, out := filepath.Join(dir, "in.pcap"), filepath.Join(dir, "out.pcap")
	if _, err := os.Stat(in); err != nil {
		f, err := os.Create(in)
		if err != nil {
			t.Fatal(err)
		}
		w := pcapgo.NewWriter(f)
		if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
			t.Fatal(err)
		}
		for _, fr := range frames {
			if err := w.WritePacket(gopacket.CaptureInfo{CaptureLength: len(fr), Length: len(fr)}, fr); err != nil {
				t.Fatal(err)
			}
		}
		f.Close()
	}
	cmd := exec.Command("tcpdump", "-r", in, "-w", out, expr)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tcpdump %q: %v: %s", expr, err, b)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	sel := make([]bool, len(frames))
	for {
		data, _, err := r.ReadPacketData()
		if err != nil {
			break
		}
		for i, fr := range frames {
			if bytes.Equal(fr, data) {
				sel[i] = true
			}
		}
	}
	return sel
}

// filterForms are the expression forms the README promises.
var filterForms = []string{
	"tcp",
	"ip", "ip6",
	"port 80", "tcp port 443", "src port 80", "dst port 1000", "src or dst port 8080", "src and dst port 80",
	"portrange 400-1000", "tcp dst portrange 1000-40000",
	"host 10.0.0.1", "src host 10.0.0.2", "dst host fd00::1", "host 2001:db8::5",
	"net 10.0.0.0/8", "src net 10.0.0.0/30", "dst net 192.168.0.0/16", "net fd00::/16", "src and dst net 10.0.0.0/24",
	"tcp port 80 and host 10.0.0.1",
	"port 80 or 443", "not port 80", "! host 10.0.0.1", "not host 10.0.0.1 and 10.0.0.2",
	"host 10.0.0.1 or port 443 and ip6",
	"(port 80 or port 443) and not (src net 10.0.0.0/8 or dst host fd00::2)",
	"ip and (src port 80 && dst port 443) || dst port 8080",
}

func TestPacketFilterAgainstTcpdump(t *testing.T) {
	testutil.RequirePrivileged(t)
	if _, err := exec.LookPath("tcpdump"); err != nil {
		testutil.SkipUnlessRequired(t, "tcpdump is not installed")
	}
	type form struct {
		name, tcpdump string
		prog          pfilter.Program
	}
	var forms []form
	for _, expr := range filterForms {
		prog, err := pfilter.Parse(expr)
		if err != nil {
			t.Fatalf("%q: %v", expr, err)
		}
		forms = append(forms, form{expr, expr, prog})
	}
	// --port, --host, -4/-6, --flags: their tcpdump equivalents. libpcap's
	// tcp[] reads IPv4 only; ip6[53] is the flags byte of these frames
	// (no extension headers).
	for _, f := range []struct {
		flags   pfilter.Flags
		tcpdump string
	}{
		{pfilter.Flags{Ports: []uint16{80, 443}}, "port 80 or port 443"},
		{pfilter.Flags{Hosts: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/30"), netip.MustParsePrefix("fd00::2/128")}}, "net 10.0.0.0/30 or host fd00::2"},
		{pfilter.Flags{Family: 6}, "ip6"},
		{pfilter.Flags{Family: 4, Ports: []uint16{1000}}, "ip and port 1000"},
		{pfilter.Flags{TCPFlags: pfilter.FlagSYN | pfilter.FlagRST}, "tcp[tcpflags] & (tcp-syn|tcp-rst) != 0 or ip6[53] & 6 != 0"},
		{pfilter.Flags{Ports: []uint16{8080}, Hosts: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32")}, TCPFlags: pfilter.FlagFIN},
			"port 8080 and host 10.0.0.1 and tcp[tcpflags] & tcp-fin != 0"},
		{pfilter.Flags{Family: 6, TCPFlags: pfilter.FlagFIN}, "ip6[53] & 1 != 0"},
	} {
		forms = append(forms, form{fmt.Sprintf("flags %+v", f.flags), f.tcpdump, f.flags.Program()})
	}
	frames := filterFrames(t)
	dir := t.TempDir()
	for _, fm := range forms {
		t.Run(fm.name, func(t *testing.T) {
			want := tcpdumpSelects(t, dir, frames, fm.tcpdump)
			prog := fm.prog
			tp := loadTestPath(t, PacketConfig{Filter: prog, Capture: &CaptureConfig{Snaplen: SnapHeaders, RingSize: 1 << 20}}, 1)
			n := 0
			for i, fr := range frames {
				for _, hook := range hooks {
					_, c, err := tp.runFrame(t, 0, hook, fr)
					if err != nil {
						t.Fatal(err)
					}
					if got := c.TcpPackets == 1; got != want[i] {
						t.Errorf("%s: frame %d (%s): kernel %v, tcpdump %v", hook, i, describeFrame(fr), got, want[i])
					}
				}
				if want[i] {
					n++
				}
				if pm := prog.Match(packetOf(fr)); pm != want[i] {
					t.Errorf("Go evaluator: frame %d (%s): %v, tcpdump %v", i, describeFrame(fr), pm, want[i])
				}
			}
			cc, err := tp.pp.CaptureCounters()
			if err != nil {
				t.Fatal(err)
			}
			if cc.Matched != uint64(2*n) || cc.Captured+cc.Lost != cc.Matched {
				t.Errorf("capture counters %+v, want %d matched (two hooks) = captured + lost", cc, 2*n)
			}
			t.Logf("%d of %d frames selected", n, len(frames))
			if n == 0 || (n == len(frames) && fm.tcpdump != "tcp") {
				t.Errorf("tcpdump selects %d of %d frames: the frames do not tell this form apart", n, len(frames))
			}
		})
	}
}

func packetOf(fr []byte) pfilter.Packet {
	p := gopacket.NewPacket(fr, layers.LayerTypeEthernet, gopacket.Default)
	var out pfilter.Packet
	if n := p.NetworkLayer(); n != nil {
		src, _ := netip.AddrFromSlice(n.NetworkFlow().Src().Raw())
		dst, _ := netip.AddrFromSlice(n.NetworkFlow().Dst().Raw())
		out.Src, out.Dst = src, dst
	}
	if tl, ok := p.TransportLayer().(*layers.TCP); ok {
		out.SPort, out.DPort = uint16(tl.SrcPort), uint16(tl.DstPort)
		out.Flags = tl.Contents[13]
	}
	return out
}

func describeFrame(fr []byte) string {
	p := packetOf(fr)
	return fmt.Sprintf("%s:%d > %s:%d flags %#x", p.Src, p.SPort, p.Dst, p.DPort, p.Flags)
}
