package probe

import (
	"net/netip"
	"testing"

	"github.com/tcplens/tcplens/internal/bpfobj"
	"github.com/tcplens/tcplens/internal/testutil"
)

// The agent's pool loads a copy per slot as interfaces appear (grow), not
// all at once: every later copy must use the first copy's maps, so the
// guard rules set at load and every reload hold on each slot, and the
// counters the agent exports (per slot, and the guard's) cover them all.
func TestPacketPoolGuardSharedAcrossSlots(t *testing.T) {
	testutil.RequirePrivileged(t)
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("2001:db8::2")
	rules := GuardRules{Block: []netip.Prefix{netip.PrefixFrom(a, 32)}}
	pool, err := NewPacketPool(PacketConfig{Guard: true, GuardRules: &rules}, HookAuto)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	for i := 0; i < 2; i++ {
		if err := pool.grow(); err != nil {
			t.Fatal(err)
		}
	}
	tp := &testPath{pp: pool.path}
	check := func(step string, drops map[netip.Addr]bool) {
		t.Helper()
		for slot := 0; slot < 3; slot++ {
			for _, hook := range hooks {
				for src, drop := range drops {
					fam := 4
					if src.Is6() {
						fam = 6
					}
					ret, fc, err := tp.runFrame(t, slot, hook, guardFrame(t, fam, src, 80, syn))
					if err != nil {
						t.Fatal(err)
					}
					// The slot's flag counters too: pool.Counters reads them
					// from the first copy's map.
					if fc.Packets != 1 || fc.SynNoAck != 1 {
						t.Errorf("%s: slot %d %s: counters of the slot moved by %d packets, %d SYNs; want 1 each", step, slot, hook, fc.Packets, fc.SynNoAck)
					}
					if ret != wantReturn(hook, drop) {
						t.Errorf("%s: slot %d %s, SYN from %v returned %d, want drop=%v", step, slot, hook, src, ret, drop)
					}
				}
			}
		}
	}
	check("rules at load", map[netip.Addr]bool{a: true, b: false})
	if err := pool.SetGuardRules(GuardRules{Block: []netip.Prefix{netip.PrefixFrom(b, 128)}}); err != nil {
		t.Fatal(err)
	}
	check("after a reload", map[netip.Addr]bool{a: false, b: true})
	c, err := pool.GuardCounters()
	if err != nil {
		t.Fatal(err)
	}
	// Three slots, both hooks, one blocked SYN per step.
	if want := uint64(3 * len(hooks) * 2); c.Matched[GuardBlock] != want || c.Dropped != want {
		t.Errorf("guard counters: block matched %d, dropped %d; want %d each (every slot counts into one map)", c.Matched[GuardBlock], c.Dropped, want)
	}
}

// fillGuardSources puts n IPv4 sources 10.x.y.z into the table, with SYN
// counts 1..n.
func fillGuardSources(t testing.TB, pp *PacketPath, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		k := bpfobj.PacketGuardSourceKey{Family: 4}
		k.Addr[0], k.Addr[1], k.Addr[2], k.Addr[3] = 10, byte(i>>16), byte(i>>8), byte(i)
		v := bpfobj.PacketGuardSource{Syns: uint64(i + 1)}
		if err := pp.Maps.GuardSources.Put(&k, &v); err != nil {
			t.Fatal(err)
		}
	}
}

// The walk in batches returns every entry once, with its value (the
// oracle: what the test put there).
func TestGuardSourcesWalk(t *testing.T) {
	tp := loadTestPath(t, PacketConfig{Guard: true}, 1)
	const n = 10000 // more than one batch
	fillGuardSources(t, tp.pp, n)
	srcs, err := tp.pp.GuardSources()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[netip.Addr]bool{}
	for _, s := range srcs {
		b := s.Addr.As4()
		i := int(b[1])<<16 | int(b[2])<<8 | int(b[3])
		if b[0] != 10 || i >= n || s.SYNs != uint64(i+1) || seen[s.Addr] {
			t.Fatalf("source %v with %d SYNs: not one the test put there, or twice", s.Addr, s.SYNs)
		}
		seen[s.Addr] = true
	}
	if len(seen) != n {
		t.Errorf("%d sources, want %d", len(seen), n)
	}
}

// BenchmarkGuardSourcesWalk: what the agent's scrape pays to count the
// blocked sources once the scan rule has blocked one: a walk of the
// per-source table, here full (65,536 entries, the default).
func BenchmarkGuardSourcesWalk(b *testing.B) {
	tp := loadTestPath(b, PacketConfig{Guard: true}, 1)
	fillGuardSources(b, tp.pp, int(tp.pp.Maps.GuardSources.MaxEntries()))
	b.ResetTimer()
	for b.Loop() {
		srcs, err := tp.pp.GuardSources()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(len(srcs)), "sources")
	}
}
