package probe

// Layer 3 for the guard stage: gopacket frames through both programs with
// BPF_PROG_TEST_RUN, one scenario per rule and per precedence conflict, in
// IPv4 and IPv6. The oracle is the table itself: which packet each rule set
// must drop, and which rule must be charged for it. The buckets and the
// scan window run on a clock the test sets (PacketConfig.GuardFakeClock).

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket/layers"
)

// guardStep is one packet and what the stage must do with it.
type guardStep struct {
	src   string        // source address (the family's own, see addr)
	dport uint16        // destination port
	flags uint8         // TCP flags
	at    time.Duration // clock, from the scenario's start
	drop  bool          // the verdict
	rule  GuardRule     // the rule charged, GuardNumRules for none
}

type guardScenario struct {
	name  string
	rules func(fam int) GuardRules
	steps []guardStep
}

const noRule = GuardNumRules

// addr maps the table's short IPv4 names to IPv6 for the IPv6 run:
// a.b.c.d becomes 2001:db8:aabb:ccdd::, so a prefix of n bits keeps its
// meaning as 32+n bits (through pfx).
func addr(fam int, s string) netip.Addr {
	a := netip.MustParseAddr(s)
	if fam == 4 {
		return a
	}
	b := a.As4()
	return netip.MustParseAddr(fmt.Sprintf("2001:db8:%02x%02x:%02x%02x::", b[0], b[1], b[2], b[3]))
}

func pfx(fam int, s string) netip.Prefix {
	p := netip.MustParsePrefix(s)
	if fam == 4 {
		return p
	}
	return netip.PrefixFrom(addr(fam, p.Addr().String()), 32+p.Bits()).Masked()
}

func guardFrame(t testing.TB, fam int, src netip.Addr, dport uint16, flags uint8) []byte {
	return guardFrameWithOptions(t, fam, src, dport, flags, synOptions)
}

// guardFrameWithOptions is a TCP frame from src to dport with the given
// flags and TCP options, over IPv4 or IPv6 (fam 4 or 6).
func guardFrameWithOptions(t testing.TB, fam int, src netip.Addr, dport uint16, flags uint8, opts []layers.TCPOption) []byte {
	tcp := tcpLayer(40000, dport, flags, opts...)
	if fam == 4 {
		ip := ipv4Layer(layers.IPProtocolTCP)
		ip.SrcIP = net.IP(src.AsSlice())
		return serialize(t, ethLayer(layers.EthernetTypeIPv4), ip, tcp)
	}
	ip := ipv6Layer(layers.IPProtocolTCP)
	ip.SrcIP = net.IP(src.AsSlice())
	return serialize(t, ethLayer(layers.EthernetTypeIPv6), ip, tcp)
}

const (
	syn    = flagSYN
	ack    = flagACK
	synack = flagSYN | flagACK
)

func guardScenarios() []guardScenario {
	none := func(int) GuardRules { return GuardRules{} }
	return []guardScenario{
		{"no rules", none, []guardStep{
			{"10.0.0.1", 80, syn, 0, false, noRule},
			{"10.0.0.1", 80, ack, 0, false, noRule},
		}},
		{"block cidr", func(f int) GuardRules { return GuardRules{Block: []netip.Prefix{pfx(f, "10.1.0.0/16")}} }, []guardStep{
			{"10.1.2.3", 80, syn, 0, true, GuardBlock},
			{"10.1.2.3", 80, ack, 0, true, GuardBlock},
			{"10.1.2.3", 80, synack, 0, true, GuardBlock},
			{"10.2.0.1", 80, syn, 0, false, noRule},
			{"10.2.0.1", 80, ack, 0, false, noRule},
		}},
		{"block longest prefix among several", func(f int) GuardRules {
			return GuardRules{Block: []netip.Prefix{pfx(f, "10.0.0.0/8"), pfx(f, "10.1.2.3/32"), pfx(f, "192.168.0.0/16")}}
		}, []guardStep{
			{"10.200.0.1", 80, ack, 0, true, GuardBlock},
			{"10.1.2.3", 80, ack, 0, true, GuardBlock},
			{"192.168.7.7", 80, syn, 0, true, GuardBlock},
			{"11.0.0.1", 80, syn, 0, false, noRule},
		}},
		{"allow beats block", func(f int) GuardRules {
			return GuardRules{Block: []netip.Prefix{pfx(f, "10.0.0.0/8")}, Allow: []netip.Prefix{pfx(f, "10.1.0.0/16")}}
		}, []guardStep{
			{"10.1.0.5", 80, syn, 0, false, GuardAllowed},
			{"10.1.0.5", 80, ack, 0, false, GuardAllowed},
			{"10.2.0.5", 80, ack, 0, true, GuardBlock},
		}},
		{"allow beats a longer block inside it", func(f int) GuardRules {
			return GuardRules{Allow: []netip.Prefix{pfx(f, "10.0.0.0/8")}, Block: []netip.Prefix{pfx(f, "10.1.0.0/16"), pfx(f, "11.0.0.0/8")}}
		}, []guardStep{
			{"10.1.0.5", 80, ack, 0, false, GuardAllowed},
			{"10.2.0.5", 80, ack, 0, false, noRule},
			{"11.1.0.5", 80, ack, 0, true, GuardBlock},
		}},
		{"allow inside block inside block", func(f int) GuardRules {
			return GuardRules{Block: []netip.Prefix{pfx(f, "10.0.0.0/8"), pfx(f, "10.1.2.0/24")}, Allow: []netip.Prefix{pfx(f, "10.1.2.3/32")}}
		}, []guardStep{
			{"10.1.2.3", 80, syn, 0, false, GuardAllowed},
			{"10.1.2.4", 80, syn, 0, true, GuardBlock},
			{"10.9.0.1", 80, ack, 0, true, GuardBlock},
		}},
		{"ipv4 rules leave ipv6 alone and back", func(f int) GuardRules {
			other := 4
			if f == 4 {
				other = 6
			}
			return GuardRules{Block: []netip.Prefix{pfx(other, "10.0.0.0/8")}}
		}, []guardStep{
			{"10.0.0.1", 80, syn, 0, false, noRule},
		}},
		{"drop port", func(int) GuardRules { return GuardRules{DropPorts: []uint16{8080, 0, 65535}} }, []guardStep{
			{"10.0.0.1", 8080, syn, 0, true, GuardDropPort},
			{"10.0.0.1", 8080, ack, 0, true, GuardDropPort},
			{"10.0.0.1", 65535, ack, 0, true, GuardDropPort},
			{"10.0.0.1", 0, ack, 0, true, GuardDropPort},
			{"10.0.0.1", 8081, ack, 0, false, noRule},
		}},
		{"drop syn port", func(int) GuardRules { return GuardRules{DropSYNPorts: []uint16{25}} }, []guardStep{
			{"10.0.0.1", 25, syn, 0, true, GuardDropSYNPort},
			{"10.0.0.1", 25, ack, 0, false, noRule},
			{"10.0.0.1", 25, synack, 0, false, noRule},
			{"10.0.0.1", 26, syn, 0, false, noRule},
		}},
		{"block beats drop port", func(f int) GuardRules {
			return GuardRules{Block: []netip.Prefix{pfx(f, "10.0.0.0/8")}, DropPorts: []uint16{80}, DropSYNPorts: []uint16{80}}
		}, []guardStep{
			{"10.0.0.1", 80, syn, 0, true, GuardBlock},
			{"11.0.0.1", 80, syn, 0, true, GuardDropPort},
		}},
		{"drop port beats drop syn port", func(int) GuardRules { return GuardRules{DropPorts: []uint16{80}, DropSYNPorts: []uint16{80}} }, []guardStep{
			{"10.0.0.1", 80, syn, 0, true, GuardDropPort},
		}},
		{"allow beats drop port", func(f int) GuardRules {
			return GuardRules{Allow: []netip.Prefix{pfx(f, "10.0.0.1/32")}, DropPorts: []uint16{80}}
		}, []guardStep{
			{"10.0.0.1", 80, ack, 0, false, GuardAllowed},
			{"10.0.0.2", 80, ack, 0, true, GuardDropPort},
		}},
		{"syn rate per source", func(int) GuardRules { return GuardRules{SYNRate: 10, SYNBurst: 3} }, []guardStep{
			{"10.0.0.1", 80, syn, 0, false, noRule},
			{"10.0.0.1", 80, syn, 0, false, noRule},
			{"10.0.0.1", 80, syn, 0, false, noRule},
			{"10.0.0.1", 80, syn, 0, true, GuardSYNRate},
			{"10.0.0.1", 80, ack, 0, false, noRule}, // only SYNs are rate-limited
			{"10.0.0.2", 80, syn, 0, false, noRule}, // its own bucket
			{"10.0.0.1", 80, syn, 99 * time.Millisecond, true, GuardSYNRate},
			{"10.0.0.1", 80, syn, 100 * time.Millisecond, false, noRule}, // one token back
			{"10.0.0.1", 80, syn, 100 * time.Millisecond, true, GuardSYNRate},
			{"10.0.0.1", 80, syn, 10 * time.Second, false, noRule}, // full again: 3
			{"10.0.0.1", 80, syn, 10 * time.Second, false, noRule},
			{"10.0.0.1", 80, syn, 10 * time.Second, false, noRule},
			{"10.0.0.1", 80, syn, 10 * time.Second, true, GuardSYNRate},
		}},
		{"allow beats syn rate", func(f int) GuardRules {
			return GuardRules{Allow: []netip.Prefix{pfx(f, "10.0.0.1/32")}, SYNRate: 1, SYNBurst: 1}
		}, []guardStep{
			{"10.0.0.1", 80, syn, 0, false, noRule},
			{"10.0.0.1", 80, syn, 0, false, noRule},
			{"10.0.0.2", 80, syn, 0, false, noRule},
			{"10.0.0.2", 80, syn, 0, true, GuardSYNRate},
		}},
		{"drop syn port beats syn rate", func(int) GuardRules { return GuardRules{DropSYNPorts: []uint16{25}, SYNRate: 1, SYNBurst: 1} }, []guardStep{
			{"10.0.0.1", 25, syn, 0, true, GuardDropSYNPort},
			{"10.0.0.1", 80, syn, 0, false, noRule}, // the dropped SYN took no token
			{"10.0.0.1", 80, syn, 0, true, GuardSYNRate},
		}},
		{"global syn rate", func(int) GuardRules { return GuardRules{SYNRateGlobal: 100, SYNBurstGlobal: 2} }, []guardStep{
			{"10.0.0.1", 80, syn, 0, false, noRule},
			{"10.0.0.2", 80, syn, 0, false, noRule},
			{"10.0.0.3", 80, syn, 0, true, GuardSYNRateGlobal},
			{"10.0.0.3", 80, ack, 0, false, noRule},
			{"10.0.0.4", 80, syn, 10 * time.Millisecond, false, noRule},
			{"10.0.0.5", 80, syn, 10 * time.Millisecond, true, GuardSYNRateGlobal},
		}},
		{"source rate before global rate", func(int) GuardRules {
			return GuardRules{SYNRate: 1, SYNBurst: 1, SYNRateGlobal: 1, SYNBurstGlobal: 3}
		}, []guardStep{
			{"10.0.0.1", 80, syn, 0, false, noRule},
			{"10.0.0.1", 80, syn, 0, true, GuardSYNRate}, // takes no global token
			{"10.0.0.2", 80, syn, 0, false, noRule},
			{"10.0.0.3", 80, syn, 0, false, noRule},
			{"10.0.0.4", 80, syn, 0, true, GuardSYNRateGlobal},
		}},
		{"known sources bypass the global bucket, unknown ones need it for an entry", func(int) GuardRules {
			return GuardRules{SYNRate: 10, SYNBurst: 10, SYNRateGlobal: 1, SYNBurstGlobal: 1}
		}, []guardStep{
			{"10.0.0.1", 80, syn, 0, false, noRule}, // global token, then its entry
			{"10.0.0.2", 80, syn, 0, true, GuardSYNRateGlobal},
			{"10.0.0.1", 80, syn, 0, false, noRule},            // known: its own bucket only
			{"10.0.0.2", 80, syn, 0, true, GuardSYNRateGlobal}, // the drop made no entry
			{"10.0.0.2", 80, syn, time.Second, false, noRule},
			{"10.0.0.2", 80, syn, time.Second, false, noRule},
			{"10.0.0.3", 80, syn, time.Second, true, GuardSYNRateGlobal},
		}},
		{"scan blocked after N ports, released after block-for", func(int) GuardRules {
			return GuardRules{ScanPorts: 4, ScanWindow: time.Second, BlockFor: 10 * time.Second}
		}, []guardStep{
			{"10.0.0.9", 1, syn, 0, false, noRule},
			{"10.0.0.9", 2, syn, 0, false, noRule},
			{"10.0.0.9", 2, syn, 0, false, noRule}, // the same port again is no new port
			{"10.0.0.9", 3, syn, 100 * time.Millisecond, false, noRule},
			{"10.0.0.9", 4, syn, 200 * time.Millisecond, false, noRule}, // the Nth: passes, block starts
			{"10.0.0.9", 1, syn, 300 * time.Millisecond, true, GuardScanBlocked},
			{"10.0.0.9", 1, ack, 300 * time.Millisecond, false, noRule}, // established traffic goes on
			{"10.0.0.8", 5, syn, 300 * time.Millisecond, false, noRule}, // others are not blocked
			{"10.0.0.9", 5, syn, 10*time.Second + 199*time.Millisecond, true, GuardScanBlocked},
			{"10.0.0.9", 5, syn, 10*time.Second + 200*time.Millisecond, false, noRule}, // released
		}},
		{"scan window expires", func(int) GuardRules {
			return GuardRules{ScanPorts: 3, ScanWindow: time.Second, BlockFor: 10 * time.Second}
		}, []guardStep{
			{"10.0.0.9", 1, syn, 0, false, noRule},
			{"10.0.0.9", 2, syn, 0, false, noRule},
			{"10.0.0.9", 3, syn, 1001 * time.Millisecond, false, noRule}, // a new window: 1 port
			{"10.0.0.9", 4, syn, 1500 * time.Millisecond, false, noRule},
			{"10.0.0.9", 5, syn, 1600 * time.Millisecond, false, noRule}, // 3rd in this window: block
			{"10.0.0.9", 6, syn, 1700 * time.Millisecond, true, GuardScanBlocked},
		}},
		{"scan counts ports by low byte: 256 apart is one port", func(int) GuardRules {
			return GuardRules{ScanPorts: 3, ScanWindow: time.Second, BlockFor: time.Second}
		}, []guardStep{
			{"10.0.0.9", 80, syn, 0, false, noRule},
			{"10.0.0.9", 80 + 256, syn, 0, false, noRule},
			{"10.0.0.9", 81, syn, 0, false, noRule},
			{"10.0.0.9", 82, syn, 0, false, noRule},
			{"10.0.0.9", 83, syn, 0, true, GuardScanBlocked},
		}},
		{"unknown sources beyond the admission bucket go untracked", func(int) GuardRules {
			return GuardRules{SYNRate: 1, SYNBurst: 1, AdmitRate: 1, AdmitBurst: 1}
		}, []guardStep{
			{"10.0.0.1", 80, syn, 0, false, noRule}, // admitted
			{"10.0.0.1", 80, syn, 0, true, GuardSYNRate},
			{"10.0.0.2", 80, syn, 0, false, noRule}, // no entry: no bucket
			{"10.0.0.2", 80, syn, 0, false, noRule},
			{"10.0.0.2", 80, syn, time.Second, false, noRule}, // admitted now
			{"10.0.0.2", 80, syn, time.Second, true, GuardSYNRate},
		}},
		{"dry run drops nothing and counts", func(f int) GuardRules {
			return GuardRules{DryRun: true, Block: []netip.Prefix{pfx(f, "10.0.0.0/8")}, SYNRate: 1, SYNBurst: 1}
		}, []guardStep{
			{"10.0.0.1", 80, syn, 0, false, GuardBlock},
			{"11.0.0.1", 80, syn, 0, false, noRule},
			{"11.0.0.1", 80, syn, 0, false, GuardSYNRate},
		}},
	}
}

func TestGuardVerdicts(t *testing.T) {
	// One load per hook (a load takes the verifier a while); each scenario
	// starts with no per-source entries and its clock an hour later.
	for _, hook := range hooks {
		// Not a tiny table: an LRU hash hands free entries to per-CPU lists,
		// and with 64 entries 6.1 evicted a scanner's entry between two
		// steps run on different CPUs.
		tp := loadTestPath(t, PacketConfig{Guard: true, GuardFakeClock: true, GuardSources: 4096}, 1)
		start := time.Hour
		for _, sc := range guardScenarios() {
			for _, fam := range []int{4, 6} {
				start += time.Hour
				t.Run(fmt.Sprintf("%s/ipv%d/%s", sc.name, fam, hook), func(t *testing.T) {
					if err := tp.pp.clearGuardSources(); err != nil {
						t.Fatal(err)
					}
					if err := tp.pp.SetGuardRules(sc.rules(fam)); err != nil {
						t.Fatal(err)
					}
					for i, st := range sc.steps {
						tp.checkGuardStep(t, hook, fam, start, i, st)
					}
				})
			}
		}
	}
}

func (tp *testPath) checkGuardStep(t *testing.T, hook Hook, fam int, start time.Duration, i int, st guardStep) {
	t.Helper()
	if err := tp.pp.SetGuardClock(start + st.at); err != nil {
		t.Fatal(err)
	}
	frame := guardFrame(t, fam, addr(fam, st.src), st.dport, st.flags)
	what := fmt.Sprintf("step %d (%s -> %d flags %#x at %v)", i, st.src, st.dport, st.flags, st.at)
	tp.checkGuardFrame(t, hook, what, frame, st.drop, st.rule)
}

// checkGuardFrame runs one frame and checks the verdict and the one rule
// charged for it.
func (tp *testPath) checkGuardFrame(t *testing.T, hook Hook, what string, frame []byte, drop bool, rule GuardRule) {
	t.Helper()
	st := struct {
		drop bool
		rule GuardRule
	}{drop, rule}
	before, err := tp.pp.GuardCounters()
	if err != nil {
		t.Fatal(err)
	}
	ret, fc, err := tp.runFrame(t, 0, hook, frame)
	if err != nil {
		t.Fatal(err)
	}
	after, err := tp.pp.GuardCounters()
	if err != nil {
		t.Fatal(err)
	}
	if want := wantReturn(hook, st.drop); ret != want {
		t.Errorf("%s: returned %d, want %d (drop=%v)", what, ret, want, st.drop)
	}
	if fc.Dropped != b2u(st.drop) {
		t.Errorf("%s: flag counters dropped %d, want %d", what, fc.Dropped, b2u(st.drop))
	}
	if got := after.Dropped - before.Dropped; got != b2u(st.drop) {
		t.Errorf("%s: guard dropped %d, want %d", what, got, b2u(st.drop))
	}
	for r := GuardRule(0); r < GuardNumRules; r++ {
		want := b2u(r == st.rule)
		if got := after.Matched[r] - before.Matched[r]; got != want {
			t.Errorf("%s: rule %s matched %d, want %d", what, r, got, want)
		}
	}
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// A rule reload flips between complete sets: a packet is decided by the
// old set or the new one. The test installs block A, then block B, and
// checks both before and after; the double buffer's spare set is
// overwritten each time (three reloads cycle through both slots).
func TestGuardReload(t *testing.T) {
	tp := loadTestPath(t, PacketConfig{Guard: true, GuardFakeClock: true}, 1)
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	sets := []GuardRules{
		{Block: []netip.Prefix{netip.PrefixFrom(a, 32)}},
		{Block: []netip.Prefix{netip.PrefixFrom(b, 32)}},
		{Block: []netip.Prefix{netip.PrefixFrom(a, 32)}, DropPorts: []uint16{80}},
		{},
	}
	wants := [][2]bool{{true, false}, {false, true}, {true, true}, {false, false}}
	for i, g := range sets {
		if err := tp.pp.SetGuardRules(g); err != nil {
			t.Fatal(err)
		}
		for j, src := range []netip.Addr{a, b} {
			ret, _, err := tp.runFrame(t, 0, HookXDP, guardFrame(t, 4, src, 80, ack))
			if err != nil {
				t.Fatal(err)
			}
			if want := wantReturn(HookXDP, wants[i][j]); ret != want {
				t.Errorf("rule set %d, source %v: returned %d, want %d", i, src, ret, want)
			}
		}
	}
	// A bad rule set is refused and the old one stays.
	if err := tp.pp.SetGuardRules(GuardRules{ScanPorts: 1}); err == nil {
		t.Fatal("scan-ports 1 accepted")
	}
}

// The production build (kernel clock) verifies too, and several slots
// share one rule set: a block installed once applies on every slot.
func TestGuardLoadsOnSlots(t *testing.T) {
	tp := loadTestPath(t, PacketConfig{Guard: true, TrackSYN: true, DropSYNPorts: []uint16{25}}, 3)
	src := netip.MustParseAddr("10.0.0.1")
	if err := tp.pp.SetGuardRules(GuardRules{Block: []netip.Prefix{netip.PrefixFrom(src, 32)},
		SYNRate: 1000, SYNBurst: 10, SYNRateGlobal: 1e6, ScanPorts: 100, ScanWindow: time.Second, BlockFor: time.Second}); err != nil {
		t.Fatal(err)
	}
	for slot := 0; slot < 3; slot++ {
		for _, hook := range hooks {
			ret, _, err := tp.runFrame(t, slot, hook, guardFrame(t, 4, src, 80, syn))
			if err != nil {
				t.Fatal(err)
			}
			if ret != wantReturn(hook, true) {
				t.Errorf("slot %d %s: blocked source's SYN returned %d", slot, hook, ret)
			}
			ret, _, err = tp.runFrame(t, slot, hook, guardFrame(t, 6, netip.MustParseAddr("2001:db8::1"), 80, syn))
			if err != nil {
				t.Fatal(err)
			}
			if ret != wantReturn(hook, false) {
				t.Errorf("slot %d %s: other source's SYN returned %d", slot, hook, ret)
			}
		}
	}
	// The old SYN drop rule of flags/syn still works beside the guard.
	ret, _, err := tp.runFrame(t, 0, HookXDP, guardFrame(t, 6, netip.MustParseAddr("2001:db8::1"), 25, syn))
	if err != nil {
		t.Fatal(err)
	}
	if ret != xdpDrop {
		t.Errorf("SYN to --drop-syn-port 25 returned %d, want drop", ret)
	}
	srcs, err := tp.pp.GuardSources()
	if err != nil {
		t.Fatal(err)
	}
	if len(srcs) != 1 || srcs[0].Addr != netip.MustParseAddr("2001:db8::1") {
		t.Errorf("guard sources %+v, want the one IPv6 source that reached the per-source rules", srcs)
	}
}

// Slots share the per-source state, and with it the bitmap that says
// which sources may have an entry: a source admitted through one slot is
// known on another, where it answers to its own bucket while the global
// bucket is drained (were the bitmap per slot, it would meet the drained
// global bucket there and be dropped).
func TestGuardKnownAcrossSlots(t *testing.T) {
	tp := loadTestPath(t, PacketConfig{Guard: true, GuardFakeClock: true, GuardSources: 4096}, 2)
	if err := tp.pp.SetGuardClock(time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := tp.pp.SetGuardRules(GuardRules{SYNRate: 10, SYNBurst: 10, SYNRateGlobal: 1, SYNBurstGlobal: 1}); err != nil {
		t.Fatal(err)
	}
	for _, fam := range []int{4, 6} {
		if err := tp.pp.clearGuardSources(); err != nil {
			t.Fatal(err)
		}
		if err := tp.pp.SetGuardClock(time.Duration(fam) * time.Hour); err != nil {
			t.Fatal(err)
		}
		known, other := addr(fam, "10.0.0.1"), addr(fam, "10.0.0.2")
		for i, st := range []struct {
			slot int
			src  netip.Addr
			drop bool
		}{
			{1, known, false}, // the global token, then its entry
			{0, other, true},  // the global bucket is drained
			{0, known, false}, // known on slot 0 too: its own bucket
			{1, known, false},
		} {
			for _, hook := range hooks {
				ret, _, err := tp.runFrame(t, st.slot, hook, guardFrame(t, fam, st.src, 80, syn))
				if err != nil {
					t.Fatal(err)
				}
				if ret != wantReturn(hook, st.drop) {
					t.Errorf("ipv%d step %d (slot %d %s, %v): returned %d, want drop=%v", fam, i, st.slot, hook, st.src, ret, st.drop)
				}
			}
		}
	}
}
