// Package sockproc says which process owns the TCP socket a captured
// packet belongs to, best effort, from procfs: /proc/net/tcp{,6} map the
// connection to a socket inode, /proc/PID/fd map the inode to a process.
//
// Limits: only sockets in tcplens's own network namespace (a packet on a
// veth whose peer lives in another namespace has no owner here); a
// connection that opened and closed between two refreshes (at most one
// every refreshEvery, on a miss; a connection that missed is tried again
// only after retryMiss) is never seen; a socket shared by several
// processes is given to the first found.
package sockproc

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Tuple is a TCP packet's addresses, ports and flags.
type Tuple struct {
	Src, Dst     netip.Addr
	SPort, DPort uint16
	Flags        uint8
}

// ParseTuple reads an Ethernet frame (up to two VLAN tags, IPv4 with
// options, IPv6 without extension headers) carrying TCP.
func ParseTuple(b []byte) (Tuple, bool) {
	var t Tuple
	if len(b) < 14 {
		return t, false
	}
	off, proto := 14, binary.BigEndian.Uint16(b[12:])
	for i := 0; i < 2 && (proto == 0x8100 || proto == 0x88a8); i++ {
		if len(b) < off+4 {
			return t, false
		}
		proto = binary.BigEndian.Uint16(b[off+2:])
		off += 4
	}
	var tcp int
	switch proto {
	case 0x0800:
		if len(b) < off+20 || b[off+9] != 6 {
			return t, false
		}
		t.Src, _ = netip.AddrFromSlice(b[off+12 : off+16])
		t.Dst, _ = netip.AddrFromSlice(b[off+16 : off+20])
		tcp = off + int(b[off]&0x0f)*4
	case 0x86dd:
		if len(b) < off+40 || b[off+6] != 6 {
			return t, false
		}
		t.Src, _ = netip.AddrFromSlice(b[off+8 : off+24])
		t.Dst, _ = netip.AddrFromSlice(b[off+24 : off+40])
		tcp = off + 40
	default:
		return t, false
	}
	if len(b) < tcp+14 {
		return t, false
	}
	t.SPort, t.DPort = binary.BigEndian.Uint16(b[tcp:]), binary.BigEndian.Uint16(b[tcp+2:])
	t.Flags = b[tcp+13]
	return t, true
}

type conn struct {
	local, remote netip.AddrPort
}

type owner struct {
	pid  int
	comm string
	desc string // "PID: N, Command: NAME", made once
}

// A refresh reads /proc/net/tcp{,6} and every process's fd directory:
// milliseconds on a busy host, so at most five a second, and a connection
// that was not found is not looked for again for a while (packets of
// other namespaces' connections would otherwise cause a refresh each).
const (
	refreshEvery = 200 * time.Millisecond
	retryMiss    = 2 * time.Second
)

// Table caches connection owners.
type Table struct {
	proc      string
	conns     map[conn]owner
	refreshed time.Time
	misses    map[conn]time.Time
}

// New returns a table reading /proc.
func New() *Table { return &Table{proc: "/proc", misses: map[conn]time.Time{}} }

// Describe returns "PID: N, Command: NAME" for the packet's socket, or "".
func (t *Table) Describe(frame []byte) string {
	tp, ok := ParseTuple(frame)
	if !ok {
		return ""
	}
	a, b := netip.AddrPortFrom(tp.Src, tp.SPort), netip.AddrPortFrom(tp.Dst, tp.DPort)
	keys := []conn{{a, b}, {b, a}}
	for _, k := range keys {
		if o, ok := t.conns[k]; ok {
			return o.desc
		}
	}
	now := time.Now()
	if now.Sub(t.refreshed) < refreshEvery {
		return ""
	}
	if last, ok := t.misses[keys[0]]; ok && now.Sub(last) < retryMiss {
		return "" // a connection of another namespace, most likely
	}
	t.refresh()
	t.refreshed = now
	for _, k := range keys {
		if o, ok := t.conns[k]; ok {
			return o.desc
		}
	}
	if len(t.misses) > 65536 {
		clear(t.misses)
	}
	t.misses[keys[0]] = now
	return ""
}

func (t *Table) refresh() {
	inodes := map[uint64]conn{}
	for _, f := range []string{"net/tcp", "net/tcp6"} {
		readProcNet(filepath.Join(t.proc, f), inodes)
	}
	t.conns = map[conn]owner{}
	if len(inodes) == 0 {
		return
	}
	// In numeric order, so that of several holders of a socket the lowest
	// PID names it: usually the process that made it, not a child that
	// inherited it (a child between fork and exec holds every descriptor
	// of its parent). os.ReadDir sorts by name, which put PID 1114 before
	// 611.
	entries, _ := os.ReadDir(t.proc)
	var pids []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	slices.Sort(pids)
	for _, pid := range pids {
		name := strconv.Itoa(pid)
		dir := filepath.Join(t.proc, name, "fd")
		fds, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		var comm string
		for _, fd := range fds {
			l, err := os.Readlink(filepath.Join(dir, fd.Name()))
			if err != nil || !strings.HasPrefix(l, "socket:[") {
				continue
			}
			ino, err := strconv.ParseUint(strings.TrimSuffix(l[len("socket:["):], "]"), 10, 64)
			if err != nil {
				continue
			}
			c, ok := inodes[ino]
			if !ok {
				continue
			}
			if comm == "" {
				b, _ := os.ReadFile(filepath.Join(t.proc, name, "comm"))
				comm = strings.TrimSpace(string(b))
			}
			if _, seen := t.conns[c]; !seen {
				t.conns[c] = owner{pid: pid, comm: comm, desc: fmt.Sprintf("PID: %d, Command: %s", pid, comm)}
			}
		}
	}
}

// readProcNet adds the connections of /proc/net/tcp or tcp6 by inode.
func readProcNet(path string, into map[uint64]conn) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	s.Scan() // header
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 10 {
			continue
		}
		local, ok1 := parseHexAddrPort(fields[1])
		remote, ok2 := parseHexAddrPort(fields[2])
		ino, err := strconv.ParseUint(fields[9], 10, 64)
		if !ok1 || !ok2 || err != nil || ino == 0 {
			continue
		}
		into[ino] = conn{local: local, remote: remote}
	}
}

// parseHexAddrPort reads procfs's "0100007F:0050": the address as 32-bit
// words in host (little-endian) order, the port big-endian hex.
func parseHexAddrPort(s string) (netip.AddrPort, bool) {
	h, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, false
	}
	raw, err := hex.DecodeString(h)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, false
	}
	for i := 0; i < len(raw); i += 4 {
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, false
	}
	a, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(a.Unmap(), uint16(port)), true
}
