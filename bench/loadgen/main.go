// Command loadgen makes the load bench/agent.sh measures the agent under,
// inside the namespaces the script made (run it with `ip netns exec`):
//
//	loadgen serve -addr 10.199.9.2:7000             accept connections and hold them
//	loadgen conns -to 10.199.9.2:7000 -n 10000      open n connections, hold them until SIGTERM
//	loadgen synflood -link vethA -dst-mac MAC -dst 10.199.9.2 -dport 7000 -sources 50000 -count 500000
//
// Every loop is bounded in count and time. synflood writes crafted IPv4
// SYNs from spoofed sources in 198.18.0.0/15 (RFC 2544's benchmark range)
// onto the link through an AF_PACKET socket; the same frames as
// test/integration's flood.
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "conns":
		err = conns(os.Args[2:])
	case "synflood":
		err = synflood(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: loadgen serve|conns|synflood [flags] (see the source's comment)")
	os.Exit(2)
}

// serve accepts connections and holds them open, reading nothing, until
// SIGTERM or -max-time.
func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	addr := fs.String("addr", "", "listen on `ADDR:PORT`")
	maxTime := fs.Duration("max-time", 10*time.Minute, "exit after this long at most")
	fs.Parse(args)
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	var held []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	fmt.Println("listening")
	waitSignal(*maxTime)
	return nil
}

// conns opens n connections to -to, prints "ready N" once all are
// established, and holds them until SIGTERM or -max-time.
func conns(args []string) error {
	fs := flag.NewFlagSet("conns", flag.ExitOnError)
	to := fs.String("to", "", "connect to `ADDR:PORT`")
	n := fs.Int("n", 10000, "connections (at most 60000: one source address's ephemeral ports)")
	maxTime := fs.Duration("max-time", 10*time.Minute, "exit after this long at most")
	fs.Parse(args)
	if *n < 1 || *n > 60000 {
		return fmt.Errorf("-n %d: want 1 to 60000", *n)
	}
	held := make([]net.Conn, 0, *n)
	d := net.Dialer{Timeout: 5 * time.Second}
	for len(held) < *n {
		c, err := d.Dial("tcp", *to)
		if err != nil {
			return fmt.Errorf("connection %d of %d: %w", len(held)+1, *n, err)
		}
		held = append(held, c)
	}
	fmt.Println("ready", len(held))
	waitSignal(*maxTime)
	return nil
}

func waitSignal(maxTime time.Duration) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-sig:
	case <-time.After(maxTime):
	}
}

// synflood writes -count SYNs, source i%sources sending from port
// 1024+i/sources, so each SYN is a new 4-tuple; it stops at -max-time.
func synflood(args []string) error {
	fs := flag.NewFlagSet("synflood", flag.ExitOnError)
	link := fs.String("link", "", "write onto `IFACE` (in this namespace)")
	dstMAC := fs.String("dst-mac", "", "the peer's `MAC`")
	dst := fs.String("dst", "", "destination IPv4 `ADDR`")
	dport := fs.Uint("dport", 7000, "destination `PORT`")
	sources := fs.Int("sources", 50000, "distinct spoofed sources (at most 131072)")
	count := fs.Int("count", 500000, "SYNs to send (at most 10,000,000)")
	maxTime := fs.Duration("max-time", 30*time.Second, "stop after this long at most")
	fs.Parse(args)
	if *sources < 1 || *sources > 1<<17 || *count < 1 || *count > 10_000_000 {
		return fmt.Errorf("-sources %d -count %d: want 1..131072 and 1..10000000", *sources, *count)
	}
	ip := net.ParseIP(*dst).To4()
	mac, err := net.ParseMAC(*dstMAC)
	if ip == nil || err != nil {
		return fmt.Errorf("-dst %q -dst-mac %q: want an IPv4 address and a MAC", *dst, *dstMAC)
	}
	ifc, err := net.InterfaceByName(*link)
	if err != nil {
		return err
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0) // 0: send only
	if err != nil {
		return fmt.Errorf("AF_PACKET socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifc.Index}); err != nil {
		return fmt.Errorf("bind AF_PACKET socket to %s: %w", *link, err)
	}
	frame := synFrame(ifc.HardwareAddr, mac, ip, uint16(*dport))
	start := time.Now()
	deadline := start.Add(*maxTime)
	sent := 0
	for i := 0; i < *count; i++ {
		setSYN(frame, uint32(198<<24|18<<16)+uint32(i%*sources), uint16(1024 + i / *sources))
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
	took := time.Since(start)
	fmt.Printf("sent %d SYNs from %d sources in %.2fs (%.0f/s)\n", sent, min(*sources, sent), took.Seconds(), float64(sent)/took.Seconds())
	return nil
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
	copy(ip[16:20], dst)
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
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
