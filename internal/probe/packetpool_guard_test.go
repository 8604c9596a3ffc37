package probe

import (
	"net/netip"
	"testing"

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
