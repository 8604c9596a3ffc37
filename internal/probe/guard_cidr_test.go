package probe

// The guard's CIDR lookup: the hash per prefix length (a family with at
// most GUARD_HASH_LENS distinct lengths) and the trie it falls back to
// must give the same verdicts. The oracle is a brute-force match in Go,
// independent of both schemes: an address is blocked if any block prefix
// of its family contains it, and passed if any allow prefix does (allow
// beats block); prefixes given as IPv4-mapped IPv6 apply to IPv4 packets.

import (
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

type cidrCase struct {
	name         string
	allow, block []string
	hash         uint8 // want GuardRules' CidrHash: bit 0 IPv4 in the hash, bit 1 IPv6
}

var cidrCases = []cidrCase{
	{"v4 four lengths nested", []string{"10.1.0.0/16", "10.1.2.128/25"}, []string{"10.0.0.0/8", "10.1.2.0/24"}, 1},
	{"v4 five lengths (trie)", []string{"10.1.0.0/16", "10.1.2.128/25"}, []string{"10.0.0.0/8", "10.1.2.0/24", "10.1.2.130/32", "10.1.2.7/32"}, 0},
	{"v6 four lengths nested", []string{"2001:db8:1:2::/64"}, []string{"2001:db8::/32", "2001:db8:1::/48", "2001:db8:1:2::1/128", "2001:db8:2::/48"}, 2},
	{"v6 five lengths (trie)", []string{"2001:db8:1:2::/64", "2001:db8:1:2:8000::/65"}, []string{"2001:db8::/32", "2001:db8:1::/48", "2001:db8:1:2::1/128", "2001:db8:1:2:8000::5/128"}, 0},
	{"v4 hash, v6 trie", []string{"10.1.0.0/16", "2001:db8:1:2::/64", "2001:db8:1:2:8000::/65"},
		[]string{"10.0.0.0/8", "10.1.2.0/24", "2001:db8::/32", "2001:db8:1::/48", "2001:db8:1:2::1/128"}, 1},
	{"v4-mapped prefixes", []string{"::ffff:10.1.0.0/112"}, []string{"::ffff:10.0.0.0/104", "2001:db8::/32"}, 3},
	{"zero-length prefixes", []string{"0.0.0.0/0", "2001:db8::/32"}, []string{"10.0.0.0/8", "::/0"}, 3},
	{"overlap at one length", []string{"10.1.2.0/24"}, []string{"10.1.2.0/24", "10.1.3.0/24"}, 1},
}

func parsePrefixes(t *testing.T, ss []string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

// oracleMatch says whether p applies to a packet from a.
func oracleMatch(p netip.Prefix, a netip.Addr) bool {
	if p.Addr().Is4In6() && a.Is4() {
		if p.Bits() < 96 {
			return true // covers all of ::ffff:0:0/96
		}
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96).Masked().Contains(a)
	}
	if p.Addr().Is4In6() {
		return false
	}
	return p.Masked().Contains(a)
}

// probeAddrs are the edges of every prefix: first, last, one before, one
// after, and a few inside.
func probeAddrs(ps []netip.Prefix) []netip.Addr {
	var out []netip.Addr
	add := func(a netip.Addr) {
		if a.IsValid() && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	for _, p := range ps {
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
		}
		p = p.Masked()
		first := p.Addr()
		b := first.AsSlice()
		for i := p.Bits(); i < len(b)*8; i++ {
			b[i/8] |= 0x80 >> (i % 8)
		}
		last, _ := netip.AddrFromSlice(b)
		add(first)
		add(last)
		add(first.Prev())
		add(last.Next())
		add(first.Next().Next())
		add(last.Prev().Prev())
	}
	return out
}

func TestGuardCidrLookup(t *testing.T) {
	for _, hook := range hooks {
		tp := loadTestPath(t, PacketConfig{Guard: true, GuardFakeClock: true}, 1)
		for _, c := range cidrCases {
			t.Run(fmt.Sprintf("%s/%s", c.name, hook), func(t *testing.T) {
				g := GuardRules{Allow: parsePrefixes(t, c.allow), Block: parsePrefixes(t, c.block)}
				k := g.kernel()
				cidrPlan(k, cidrEntries(g.Allow, g.Block))
				if k.CidrHash != c.hash {
					t.Fatalf("CidrHash %#x, want %#x", k.CidrHash, c.hash)
				}
				if err := tp.pp.SetGuardRules(g); err != nil {
					t.Fatal(err)
				}
				all := append(append([]netip.Prefix(nil), g.Allow...), g.Block...)
				probes := append(probeAddrs(all), netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db9::1"),
					netip.MustParseAddr("::ffff:10.1.2.3"))
				for _, a := range probes {
					allowed := slices.ContainsFunc(g.Allow, func(p netip.Prefix) bool { return oracleMatch(p, a) })
					blocked := slices.ContainsFunc(g.Block, func(p netip.Prefix) bool { return oracleMatch(p, a) })
					drop, rule := blocked && !allowed, noRule
					if blocked {
						rule = GuardBlock
						if allowed {
							rule = GuardAllowed
						}
					}
					fam := 4
					if !a.Is4() {
						fam = 6
					}
					for _, flags := range []uint8{ack, syn} {
						frame := guardFrame(t, fam, a, 80, flags)
						tp.checkGuardFrame(t, hook, fmt.Sprintf("%v flags %#x", a, flags), frame, drop, rule)
					}
				}
			})
		}
	}
}

// The coarse clock only when every bucket holds a tick's tokens (its
// burst lasts at least a tick): otherwise a bucket stepped by the tick
// would admit less than its rate.
func TestGuardCoarseClockChoice(t *testing.T) {
	saved := coarseTick
	t.Cleanup(func() { coarseTick = saved })
	for _, c := range []struct {
		name   string
		tick   uint64
		g      GuardRules
		coarse uint8
	}{
		{"no buckets but admission", 4e6, GuardRules{}, 1},
		{"per source 20/s burst 40", 4e6, GuardRules{SYNRate: 20, SYNBurst: 40}, 1},
		{"per source 1e6/s burst 10", 4e6, GuardRules{SYNRate: 1e6, SYNBurst: 10}, 0},
		{"global 1e9/s burst 2^20", 4e6, GuardRules{SYNRateGlobal: 1e9, SYNBurstGlobal: 1 << 20}, 0},
		{"global 1e5/s default burst", 4e6, GuardRules{SYNRateGlobal: 1e5}, 1},
		{"admission 1e6/s burst 100", 4e6, GuardRules{AdmitRate: 1e6, AdmitBurst: 100}, 0},
		{"tick unknown", 0, GuardRules{SYNRate: 20, SYNBurst: 40}, 0},
		{"burst exactly a tick", 4e6, GuardRules{SYNRate: 1000, SYNBurst: 4}, 1},
		{"burst just under a tick", 4e6, GuardRules{SYNRate: 1000, SYNBurst: 3}, 0},
	} {
		coarseTick = func() uint64 { return c.tick }
		if got := c.g.kernel().CoarseClock; got != c.coarse {
			t.Errorf("%s: coarse clock %d, want %d", c.name, got, c.coarse)
		}
	}
}

// Without bpf_ktime_get_coarse_ns (kernels before 5.11) the call is dead
// code at load and the stage keeps the precise clock: the program must
// load, and a rule set that asks for the coarse clock must still decide
// SYNs by its buckets.
func TestGuardLoadsWithoutCoarseClock(t *testing.T) {
	saved := coarseHelper
	t.Cleanup(func() { coarseHelper = saved })
	coarseHelper = func() bool { return false }
	tp := loadTestPath(t, PacketConfig{Guard: true}, 1)
	g := GuardRules{SYNRate: 1, SYNBurst: 2} // a burst of 2 s: the coarse clock's rule set
	if g.kernel().CoarseClock != 1 && coarseTick() != 0 {
		t.Fatal("the rule set does not ask for the coarse clock")
	}
	if err := tp.pp.SetGuardRules(g); err != nil {
		t.Fatal(err)
	}
	src := netip.MustParseAddr("192.0.2.7")
	for i, drop := range []bool{false, false, true} { // the burst, then over the rate
		rule := noRule
		if drop {
			rule = GuardSYNRate
		}
		tp.checkGuardFrame(t, HookXDP, fmt.Sprintf("SYN %d", i), guardFrame(t, 4, src, 80, syn), drop, rule)
	}
}

func TestGuardCIDRLimit(t *testing.T) {
	var g GuardRules
	for i := 0; i <= MaxGuardCIDRs; i++ {
		g.Block = append(g.Block, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32))
	}
	if err := g.Validate(); err == nil {
		t.Errorf("%d CIDRs accepted, want at most %d", len(g.Block), MaxGuardCIDRs)
	}
	g.Block = g.Block[:MaxGuardCIDRs]
	if err := g.Validate(); err != nil {
		t.Errorf("%d CIDRs: %v", len(g.Block), err)
	}
}

// The per-CPU cache of the last CIDR answer must not outlive its rule set:
// one source, on one CPU (so every packet meets the cache the one before
// filled), through reloads that change its verdict, on the hash and on
// the trie; each rule set's verdict is checked twice, so the second packet
// is answered from the cache.
func TestGuardCidrCacheReload(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var saved unix.CPUSet
	if err := unix.SchedGetaffinity(0, &saved); err != nil {
		t.Fatal(err)
	}
	var one unix.CPUSet
	for cpu := 0; cpu < 1024; cpu++ {
		if saved.IsSet(cpu) {
			one.Set(cpu)
			break
		}
	}
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		t.Fatal(err)
	}
	defer unix.SchedSetaffinity(0, &saved)

	tp := loadTestPath(t, PacketConfig{Guard: true, GuardFakeClock: true}, 1)
	src := netip.MustParseAddr("10.1.2.3")
	p := func(s ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, x := range s {
			out = append(out, netip.MustParsePrefix(x))
		}
		return out
	}
	trieLens := p("10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.0/25", "10.1.2.3/32")
	for i, c := range []struct {
		g    GuardRules
		drop bool
		rule GuardRule
	}{
		{GuardRules{Block: p("10.1.2.0/24")}, true, GuardBlock},
		{GuardRules{Allow: p("10.1.2.0/24")}, false, noRule},
		{GuardRules{Block: p("10.1.2.0/24"), Allow: p("10.1.2.3/32")}, false, GuardAllowed},
		{GuardRules{Block: trieLens}, true, GuardBlock},
		{GuardRules{Block: trieLens[:4], Allow: trieLens[4:]}, false, GuardAllowed},
		{GuardRules{}, false, noRule},
		{GuardRules{Block: p("10.1.2.3/32")}, true, GuardBlock},
		{GuardRules{Block: p("10.1.2.4/32")}, false, noRule},
	} {
		if err := tp.pp.SetGuardRules(c.g); err != nil {
			t.Fatal(err)
		}
		for n := 0; n < 2; n++ {
			tp.checkGuardFrame(t, HookTC, fmt.Sprintf("rule set %d, packet %d", i, n), guardFrame(t, 4, src, 80, ack), c.drop, c.rule)
		}
	}
}
