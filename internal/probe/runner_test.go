package probe

// Runs frames through the loaded packet path with BPF_PROG_TEST_RUN and
// checks counters, verdicts and SYN maps against the oracle.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/tcplens/tcplens/internal/testutil"
)

// Return codes of the two programs.
const (
	xdpDrop  = 1 // XDP_DROP
	xdpPass  = 2 // XDP_PASS
	tcShot   = 2 // TC_ACT_SHOT
	tcUnspec = 0xffffffff
	ethHLen  = 14 // TC test runs need at least an Ethernet header
)

// testPath is a loaded packet path and what it was configured with.
type testPath struct {
	pp        *PacketPath
	cfg       PacketConfig
	dropPorts map[uint16]bool
}

func loadTestPath(t testing.TB, cfg PacketConfig, slots int) *testPath {
	t.Helper()
	testutil.RequirePrivileged(t)
	pp, err := LoadPacketPath(cfg, slots)
	if err != nil {
		t.Fatalf("load packet path %+v: %v", cfg, err)
	}
	t.Cleanup(func() { pp.Close() })
	drop := map[uint16]bool{}
	for _, p := range cfg.DropSYNPorts {
		drop[p] = true
	}
	return &testPath{pp: pp, cfg: cfg, dropPorts: drop}
}

func wantReturn(hook Hook, drop bool) uint32 {
	switch {
	case hook == HookXDP && drop:
		return xdpDrop
	case hook == HookXDP:
		return xdpPass
	case drop:
		return tcShot
	}
	return tcUnspec
}

// synMaps is a snapshot of both SYN maps.
type synMaps struct {
	tuples  map[SYNTuple]uint64
	sources map[SYNSource]uint64
}

func (tp *testPath) synMaps(t testing.TB) synMaps {
	t.Helper()
	m := synMaps{map[SYNTuple]uint64{}, map[SYNSource]uint64{}}
	if !tp.cfg.TrackSYN {
		return m
	}
	var err error
	if m.tuples, err = tp.pp.SYNTuples(); err != nil {
		t.Fatal(err)
	}
	sources, err := tp.pp.SYNSources()
	if err != nil {
		t.Fatal(err)
	}
	for k, c := range sources {
		// Few sources, far below any flood: each has its entry from its
		// first SYN, so nothing is only estimated.
		if c.Earlier != 0 {
			t.Errorf("source %v: %d SYNs estimated before its entry, want 0", k, c.Earlier)
		}
		m.sources[k] = c.SYNs
	}
	return m
}

// runFrame runs frame through slot's program for hook and returns the
// return code and the counter delta.
func (tp *testPath) runFrame(t testing.TB, slot int, hook Hook, frame []byte) (uint32, FlagCounters, error) {
	t.Helper()
	before, err := tp.pp.Counters(uint32(slot))
	if err != nil {
		t.Fatal(err)
	}
	ret, err := tp.pp.Program(slot, hook).Run(&ebpf.RunOptions{Data: frame})
	if err != nil {
		return 0, FlagCounters{}, fmt.Errorf("BPF_PROG_TEST_RUN %s with %d-byte frame: %w", hook, len(frame), err)
	}
	after, err := tp.pp.Counters(uint32(slot))
	if err != nil {
		t.Fatal(err)
	}
	return ret, SubCounters(after, before), nil
}

// errNotRunnable: the kernel refuses to test-run the frame (see
// TestKernelRefusesShortFrames), so only the oracle's view of it exists.
var errNotRunnable = errors.New("BPF_PROG_TEST_RUN refuses this frame")

// kernelRefuses says which frames BPF_PROG_TEST_RUN rejects with EINVAL:
// for both program types, frames shorter than an Ethernet header; for TC
// also frames whose ethertype is IPv4 or IPv6 without the fixed IP header
// (the skb test run pulls it). XDP covers those frames.
func kernelRefuses(hook Hook, frame []byte) bool {
	if len(frame) < ethHLen {
		return true
	}
	if hook != HookTC {
		return false
	}
	switch binary.BigEndian.Uint16(frame[12:14]) {
	case 0x0800:
		return len(frame) < ethHLen+20
	case 0x86dd:
		return len(frame) < ethHLen+40
	}
	return false
}

// checkFrame runs frame through slot's program for hook and compares
// everything the packet path did with the oracle. With checkMaps it also
// diffs the whole SYN maps, which is too slow for millions of fuzz inputs.
func (tp *testPath) checkFrame(t testing.TB, slot int, hook Hook, frame []byte, checkMaps bool) (parsed, error) {
	t.Helper()
	exp := oracle(frame)
	if kernelRefuses(hook, frame) {
		return exp, errNotRunnable
	}
	wantC, wantDrop := expectCounters(exp, tp.dropPorts)
	var mapsBefore synMaps
	if checkMaps {
		mapsBefore = tp.synMaps(t)
	}
	tupleBefore, sourceBefore := tp.lookupSYN(t, slot, exp)

	ret, gotC, err := tp.runFrame(t, slot, hook, frame)
	if err != nil {
		return exp, err
	}
	if gotC != wantC {
		return exp, fmt.Errorf("%s: oracle says %v; counter delta\n got %s\nwant %s", hook, exp, fmtCounters(gotC), fmtCounters(wantC))
	}
	if want := wantReturn(hook, wantDrop); ret != want {
		return exp, fmt.Errorf("%s: oracle says %v; returned %#x, want %#x", hook, exp, ret, want)
	}

	track := tp.cfg.TrackSYN && exp.isConnAttempt()
	tupleAfter, sourceAfter := tp.lookupSYN(t, slot, exp)
	if track && (tupleAfter != tupleBefore+1 || sourceAfter != sourceBefore+1) {
		return exp, fmt.Errorf("%s: %v: SYN tuple count %d -> %d, source count %d -> %d, want +1 each",
			hook, exp, tupleBefore, tupleAfter, sourceBefore, sourceAfter)
	}
	if checkMaps {
		mapsAfter := tp.synMaps(t)
		wantTuples, wantSources := copyMap(mapsBefore.tuples), copyMap(mapsBefore.sources)
		if track {
			wantTuples[SYNTuple{Slot: uint32(slot), Src: exp.src, Dst: exp.dst, Sport: exp.sport, Dport: exp.dport}]++
			wantSources[SYNSource{Slot: uint32(slot), Addr: exp.src}]++
		}
		if !reflect.DeepEqual(mapsAfter.tuples, wantTuples) {
			return exp, fmt.Errorf("%s: %v (track %v): SYN tuples\n got %v\nwant %v", hook, exp, track, mapsAfter.tuples, wantTuples)
		}
		if !reflect.DeepEqual(mapsAfter.sources, wantSources) {
			return exp, fmt.Errorf("%s: %v (track %v): SYN sources\n got %v\nwant %v", hook, exp, track, mapsAfter.sources, wantSources)
		}
	}
	return exp, nil
}

// lookupSYN reads the counts of exp's tuple and source (0 when absent or
// when exp is not a connection attempt).
func (tp *testPath) lookupSYN(t testing.TB, slot int, exp parsed) (tuple, source uint64) {
	t.Helper()
	if !exp.isConnAttempt() || tp.pp.syn == nil {
		return 0, 0
	}
	fam := uint8(6)
	if exp.src.Is4() {
		fam = 4
	}
	tk := struct {
		Saddr, Daddr       [4]uint32
		Sport, Dport, Slot uint16
		Family, Pad        uint8
	}{addrWords(exp.src), addrWords(exp.dst), exp.sport, exp.dport, uint16(slot), fam, 0}
	if err := tp.pp.syn.tuples.Lookup(&tk, &tuple); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		t.Fatalf("look up SYN tuple: %v", err)
	}
	sk := struct {
		Addr        [4]uint32
		Slot        uint16
		Family, Pad uint8
	}{addrWords(exp.src), uint16(slot), fam, 0}
	var state struct{ SYNs, Earlier uint64 }
	if err := tp.pp.syn.sources.Lookup(&sk, &state); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		t.Fatalf("look up SYN source: %v", err)
	}
	return tuple, state.SYNs
}

// addrWords is the inverse of kernelAddr, written independently: the
// address bytes in wire order laid out in memory as four little-endian words.
func addrWords(a netip.Addr) [4]uint32 {
	var b [16]byte
	if a.Is4() {
		v4 := a.As4()
		copy(b[:], v4[:])
	} else {
		b = a.As16()
	}
	var w [4]uint32
	for i := range w {
		w[i] = uint32(b[4*i]) | uint32(b[4*i+1])<<8 | uint32(b[4*i+2])<<16 | uint32(b[4*i+3])<<24
	}
	return w
}

func copyMap[K comparable](m map[K]uint64) map[K]uint64 {
	c := make(map[K]uint64, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func fmtCounters(c FlagCounters) string {
	return fmt.Sprintf("%+v", c)
}
