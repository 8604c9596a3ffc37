package testnet

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// TCP states as /proc/net/tcp numbers them (include/net/tcp_states.h).
const (
	StateEstablished = 1
	StateSynSent     = 2
	StateSynRecv     = 3
	StateFinWait1    = 4
	StateFinWait2    = 5
	StateTimeWait    = 6
	StateClose       = 7
	StateCloseWait   = 8
	StateLastAck     = 9
	StateListen      = 10
	StateClosing     = 11
)

// Socket is one line of /proc/net/tcp or tcp6 in a namespace.
type Socket struct {
	Local, Remote netip.AddrPort
	State         int
}

// Sockets lists the namespace's TCP sockets, IPv4 and IPv6 (the ground
// truth that `ss -tan` shows, without depending on ss's output format).
func (ns *NS) Sockets() ([]Socket, error) {
	var socks []Socket
	err := ns.Do(func() error {
		for _, f := range []string{"/proc/thread-self/net/tcp", "/proc/thread-self/net/tcp6"} {
			s, err := readProcTCP(f)
			if err != nil {
				return err
			}
			socks = append(socks, s...)
		}
		return nil
	})
	return socks, err
}

func readProcTCP(path string) ([]Socket, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Socket
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 {
			continue
		}
		local, err1 := parseProcAddr(fields[1])
		remote, err2 := parseProcAddr(fields[2])
		state, err3 := strconv.ParseUint(fields[3], 16, 8)
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, fmt.Errorf("%s: cannot parse %q", path, sc.Text())
		}
		out = append(out, Socket{Local: local, Remote: remote, State: int(state)})
	}
	return out, sc.Err()
}

// parseProcAddr parses "0100007F:1F90": the address in 32-bit words of
// host byte order (little endian here), the port in hex.
func parseProcAddr(s string) (netip.AddrPort, error) {
	addrHex, portHex, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("no port in %q", s)
	}
	raw, err := hex.DecodeString(addrHex)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", s)
	}
	for i := 0; i < len(raw); i += 4 {
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	port, err := strconv.ParseUint(portHex, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bad port %q", s)
	}
	addr, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(addr.Unmap(), uint16(port)), nil
}

// CountSockets counts the namespace's TCP sockets in state, or -1 when
// they cannot be read.
func (ns *NS) CountSockets(state int) int {
	socks, err := ns.Sockets()
	if err != nil {
		return -1
	}
	n := 0
	for _, s := range socks {
		if s.State == state {
			n++
		}
	}
	return n
}

// SNMP reads the namespace's protocol counters from /proc/net/snmp and
// /proc/net/netstat, keyed "Tcp:OutSegs", "TcpExt:TCPSynRetrans" and so on.
// The namespace is the test's own, so deltas are exactly what it caused.
func (ns *NS) SNMP() (map[string]uint64, error) {
	out := map[string]uint64{}
	err := ns.Do(func() error {
		for _, f := range []string{"/proc/thread-self/net/snmp", "/proc/thread-self/net/netstat"} {
			if err := readSNMP(f, out); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// readSNMP reads the file's pairs of lines: "Proto: Name1 Name2", then
// "Proto: value1 value2".
func readSNMP(path string, into map[string]uint64) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for i := 0; i+1 < len(lines); i += 2 {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) != len(values) || len(names) == 0 || names[0] != values[0] {
			return fmt.Errorf("%s: unexpected lines %q / %q", path, lines[i], lines[i+1])
		}
		proto := strings.TrimSuffix(names[0], ":")
		for j := 1; j < len(names); j++ {
			// Some counters (Tcp:MaxConn) are signed; those are not deltas.
			v, err := strconv.ParseInt(values[j], 10, 64)
			if err != nil {
				uv, uerr := strconv.ParseUint(values[j], 10, 64)
				if uerr != nil {
					return fmt.Errorf("%s: %s: %v", path, names[j], err)
				}
				into[proto+":"+names[j]] = uv
				continue
			}
			into[proto+":"+names[j]] = uint64(v)
		}
	}
	return nil
}
