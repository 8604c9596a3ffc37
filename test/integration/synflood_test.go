package integration

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcplens/tcplens/internal/testnet"
)

// flood is a bounded SYN flood of crafted IPv4 frames, written by an
// AF_PACKET socket in one namespace of a pair onto its veth, so that they
// arrive at the other end as if from spoofed sources.
type flood struct {
	syns    int    // how many SYNs
	first   int    // index of the first SYN: a later flood continues an earlier one
	sources int    // distinct source addresses, from 198.18.0.0 (RFC 2544's benchmark range)
	dst     net.IP // the receiving end's IPv4 address
	dport   uint16 // a port nobody listens on: the receiver answers RST, routed nowhere
	maxTime time.Duration
}

// floodDport is the port the flood goes to; nothing listens there.
const floodDport = 9

// floodMaxSources is the size of 198.18.0.0/15.
const floodMaxSources = 1 << 17

// send writes the flood from ns onto its veth, addressed to the peer's
// MAC, and returns how many frames the socket took and how long it took.
// Source i%sources sends from port 1024+i/sources, so every SYN of the
// flood is a new 4-tuple.
func (f flood) send(from, to *testnet.NS) (int, time.Duration, error) {
	if f.sources < 1 || f.sources > floodMaxSources {
		return 0, 0, fmt.Errorf("flood from %d sources: 1 to %d", f.sources, floodMaxSources)
	}
	dstMAC, err := linkMAC(to)
	if err != nil {
		return 0, 0, err
	}
	var sent int
	var took time.Duration
	err = from.Do(func() error {
		ifc, err := net.InterfaceByName(from.Link)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0) // 0: send only, receive nothing
		if err != nil {
			return fmt.Errorf("AF_PACKET socket: %w", err)
		}
		defer unix.Close(fd)
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifc.Index}); err != nil {
			return fmt.Errorf("bind AF_PACKET socket to %s: %w", from.Link, err)
		}
		frame := synFrame(ifc.HardwareAddr, dstMAC, f.dst, f.dport)
		start := time.Now()
		deadline := start.Add(f.maxTime)
		for i := f.first; i < f.first+f.syns; i++ {
			src := uint32(198<<24|18<<16) + uint32(i%f.sources)
			setSYN(frame, src, uint16(1024+i/f.sources))
			if _, err := unix.Write(fd, frame); err != nil {
				if (err == unix.ENOBUFS || err == unix.EAGAIN) && time.Now().Before(deadline) {
					i-- // the device queue is full for a moment: the same frame again
					continue
				}
				return fmt.Errorf("write SYN %d: %w", i, err)
			}
			sent++
			if i%1024 == 0 && time.Now().After(deadline) {
				break
			}
		}
		took = time.Since(start)
		return nil
	})
	return sent, took, err
}

func linkMAC(ns *testnet.NS) (net.HardwareAddr, error) {
	var mac net.HardwareAddr
	err := ns.Do(func() error {
		ifc, err := net.InterfaceByName(ns.Link)
		if err != nil {
			return err
		}
		mac = ifc.HardwareAddr
		return nil
	})
	return mac, err
}

// synFrame is an Ethernet + IPv4 + TCP SYN template; setSYN fills in the
// source and the checksums.
func synFrame(srcMAC, dstMAC net.HardwareAddr, dst net.IP, dport uint16) []byte {
	b := make([]byte, 14+20+20)
	copy(b[0:6], dstMAC)
	copy(b[6:12], srcMAC)
	binary.BigEndian.PutUint16(b[12:], unix.ETH_P_IP)
	ip := b[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], 40)
	ip[8] = 64 // TTL
	ip[9] = unix.IPPROTO_TCP
	copy(ip[16:20], dst.To4())
	tcp := b[34:]
	binary.BigEndian.PutUint16(tcp[2:], dport)
	binary.BigEndian.PutUint32(tcp[4:], 1) // sequence number
	tcp[12] = 5 << 4                       // data offset: 20 bytes
	tcp[13] = 0x02                         // SYN
	binary.BigEndian.PutUint16(tcp[14:], 64240)
	return b
}

func setSYN(b []byte, src uint32, sport uint16) {
	ip, tcp := b[14:34], b[34:]
	binary.BigEndian.PutUint32(ip[12:], src)
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:], checksum(0, ip))
	binary.BigEndian.PutUint16(tcp[0:], sport)
	tcp[16], tcp[17] = 0, 0
	// Pseudo-header: addresses, protocol, TCP length.
	sum := sum16(0, ip[12:20]) + unix.IPPROTO_TCP + uint32(len(tcp))
	binary.BigEndian.PutUint16(tcp[16:], checksum(sum, tcp))
}

func sum16(sum uint32, b []byte) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	return sum
}

func checksum(sum uint32, b []byte) uint16 {
	sum = sum16(sum, b)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// prepareFloodTarget lets the spoofed SYNs reach TCP in ns: no reverse
// path filter (there is no route back to 198.18.0.0/15, on purpose: the
// RSTs ns answers with go nowhere).
func prepareFloodTarget(t testing.TB, ns *testnet.NS) {
	t.Helper()
	ns.Sysctl(t, "net.ipv4.conf.all.rp_filter", "0")
	ns.Sysctl(t, "net.ipv4.conf."+ns.Link+".rp_filter", "0")
}

// waitSettled waits until ns's Tcp:InSegs stops moving (the last frames
// of a flood may still be in a backlog) and returns the counters.
func waitSettled(t testing.TB, ns *testnet.NS) map[string]uint64 {
	t.Helper()
	prev := snmp(t, ns)
	for i := 0; i < 50; i++ {
		time.Sleep(50 * time.Millisecond)
		cur := snmp(t, ns)
		if cur["Tcp:InSegs"] == prev["Tcp:InSegs"] {
			return cur
		}
		prev = cur
	}
	t.Fatalf("Tcp:InSegs of %s still moving after 2.5 s", ns.Name)
	return nil
}

// rssKiB is a process's resident set size from /proc/PID/status.
func rssKiB(t testing.TB, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read status of pid %d: %v", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				t.Fatalf("VmRSS of pid %d: %q", pid, line)
			}
			return n
		}
	}
	t.Fatalf("no VmRSS for pid %d", pid)
	return 0
}
