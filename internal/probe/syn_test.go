package probe

import (
	"net"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket/layers"
)

// synFrom is a SYN from src:sport to v4Dst:80.
func synFrom(t testing.TB, src netip.Addr, sport uint16) []byte {
	ip := ipv4Layer(layers.IPProtocolTCP)
	ip.SrcIP = net.IP(src.AsSlice())
	return serialize(t, ethLayer(layers.EthernetTypeIPv4), ip, tcpLayer(sport, 80, flagSYN))
}

func (tp *testPath) runSYNs(t *testing.T, frames ...[]byte) {
	t.Helper()
	for _, f := range frames {
		if _, err := tp.pp.Program(0, HookTC).Run(&ebpf.RunOptions{Data: f}); err != nil {
			t.Fatalf("run SYN: %v", err)
		}
	}
}

// A full tuple table takes no new entry and evicts none: each SYN that
// needed one is counted as untracked, exactly; a swap hands back every
// count and gives the next interval an empty table.
func TestSYNTablesFullSwapExact(t *testing.T) {
	const maxTuples, n = 4, 10
	tp := loadTestPath(t, PacketConfig{TrackSYN: true, MaxTuples: maxTuples, MaxSources: 2}, 1)
	src := netip.MustParseAddr("198.18.0.1")
	var frames [][]byte
	for i := range n {
		frames = append(frames, synFrom(t, src, uint16(1000+i)))
	}
	// Every tuple twice: the first 4 tuples are tracked with 2 SYNs each.
	tp.runSYNs(t, frames...)
	tp.runSYNs(t, frames...)
	c, err := tp.pp.Counters(0)
	if err != nil {
		t.Fatal(err)
	}
	// Once full, the table is not even looked up: the 4 tracked tuples'
	// second SYNs are untracked too.
	if c.SynNoAck != 2*n || c.SynUntracked != 2*n-maxTuples {
		t.Errorf("counters: %d SYNs, %d untracked; want %d, %d", c.SynNoAck, c.SynUntracked, 2*n, 2*n-maxTuples)
	}
	if c.SynUntrackedSource != 0 {
		t.Errorf("one source, room for 2: %d SYNs untracked by source, want 0", c.SynUntrackedSource)
	}
	got, err := tp.pp.SwapSYN()
	if err != nil {
		t.Fatal(err)
	}
	var attributed uint64
	for _, v := range got.Tuples {
		attributed += v
	}
	if len(got.Tuples) != maxTuples || attributed+c.SynUntracked != c.SynNoAck {
		t.Errorf("swapped-out table: %d tuples holding %d SYNs, untracked %d, SYNs %d: %v",
			len(got.Tuples), attributed, c.SynUntracked, c.SynNoAck, got.Tuples)
	}
	if s := got.Sources[SYNSource{Addr: src}]; len(got.Sources) != 1 || s.SYNs != 2*n || s.Earlier != 0 {
		t.Errorf("sources %v, want only %v with %d SYNs", got.Sources, src, 2*n)
	}

	// The next interval starts empty, with room again.
	tp.runSYNs(t, frames[n-1])
	live, err := tp.pp.SYNTuples()
	if err != nil {
		t.Fatal(err)
	}
	if len(live) != 1 || live[SYNTuple{Src: src, Dst: netip.AddrFrom4([4]byte(v4Dst.To4())), Sport: 1000 + n - 1, Dport: 80}] != 1 {
		t.Errorf("table after the swap: %v, want only the last tuple once", live)
	}
	c2, err := tp.pp.Counters(0)
	if err != nil {
		t.Fatal(err)
	}
	if c2.SynUntracked != c.SynUntracked {
		t.Errorf("a SYN after the swap was untracked (%d -> %d)", c.SynUntracked, c2.SynUntracked)
	}
}

// A source gets an exact entry at SourceThreshold SYNs; the ones before
// are the sketch's estimate (exact here: no other source shares a cell)
// and counted as untracked by source.
func TestSYNSourceThreshold(t *testing.T) {
	tp := loadTestPath(t, PacketConfig{TrackSYN: true, SourceThreshold: 3}, 1)
	heavy, light := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2")
	for i := range 5 {
		tp.runSYNs(t, synFrom(t, heavy, uint16(2000+i)))
	}
	tp.runSYNs(t, synFrom(t, light, 3000), synFrom(t, light, 3001))
	got, err := tp.pp.SwapSYN()
	if err != nil {
		t.Fatal(err)
	}
	if s := got.Sources[SYNSource{Addr: heavy}]; len(got.Sources) != 1 || s.SYNs != 3 || s.Earlier != 2 {
		t.Errorf("sources %v, want only %v with 3 SYNs and 2 earlier", got.Sources, heavy)
	}
	c, err := tp.pp.Counters(0)
	if err != nil {
		t.Fatal(err)
	}
	if c.SynUntrackedSource != 2+2 || c.SynUntracked != 0 {
		t.Errorf("untracked by source %d (want 4: the heavy one's first 2, the light one's 2), by tuple %d (want 0)",
			c.SynUntrackedSource, c.SynUntracked)
	}
}

func TestPacketConfigLimits(t *testing.T) {
	for _, cfg := range []PacketConfig{{MaxTuples: MaxSYNTableEntries + 1}, {MaxSources: 1<<32 - 1}, {SYNSignatures: true, MaxSignatures: MaxSYNTableEntries + 1}} {
		if err := cfg.Validate(); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
	if err := (PacketConfig{MaxTuples: MaxSYNTableEntries, MaxSources: MaxSYNTableEntries, MaxSignatures: MaxSYNTableEntries}).Validate(); err != nil {
		t.Errorf("the limits themselves: %v", err)
	}
}
