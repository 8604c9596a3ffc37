package probe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"golang.org/x/sys/unix"

	"github.com/tcplens/tcplens/internal/bpfobj"
)

// GuardRule names what decided a packet in the guard stage; the values
// index GuardCounters.Matched (enum guard_rule in bpf/guard.h).
type GuardRule int

const (
	GuardAllowed GuardRule = iota
	GuardBlock
	GuardDropPort
	GuardDropSYNPort
	GuardSYNNoMSS     // a SYN without an MSS option (--syn-require-mss)
	GuardSYNSignature // a SYN whose options signature is listed (--drop-syn-signature)
	GuardScanBlocked
	GuardSYNRate
	GuardSYNRateGlobal
	GuardNumRules
)

var guardRuleNames = [...]string{
	GuardAllowed:       "allow",
	GuardBlock:         "block",
	GuardDropPort:      "drop_port",
	GuardDropSYNPort:   "drop_syn_port",
	GuardSYNNoMSS:      "syn_require_mss",
	GuardSYNSignature:  "drop_syn_signature",
	GuardScanBlocked:   "scan",
	GuardSYNRate:       "syn_rate",
	GuardSYNRateGlobal: "syn_rate_global",
}

func (r GuardRule) String() string {
	if r >= 0 && int(r) < len(guardRuleNames) {
		return guardRuleNames[r]
	}
	return fmt.Sprintf("rule%d", int(r))
}

// GuardCounters are the guard stage's counters summed over CPUs.
type GuardCounters = bpfobj.PacketGuardCounters

// GuardRules is one complete rule set of the guard stage.
type GuardRules struct {
	Allow        []netip.Prefix
	Block        []netip.Prefix
	DropPorts    []uint16 // all TCP to these ports
	DropSYNPorts []uint16 // SYN without ACK to these ports
	RequireMSS   bool     // drop a SYN without ACK that carries no MSS option
	// SYNs (without ACK) whose options signature is one of these are
	// dropped; at most MaxSYNSignatures.
	DropSYNSignatures []SYNSignature

	SYNRate        float64 // SYNs per second per source (0: no per-source bucket)
	SYNBurst       uint32  // the per-source bucket's depth (>= 1)
	SYNRateGlobal  float64 // SYNs per second for all sources together (0: off)
	SYNBurstGlobal uint32  // the global bucket's depth (0: SYNRateGlobal / 10, at least 1)

	ScanPorts  uint32        // distinct destination ports (0: no scan rule; at most 256)
	ScanWindow time.Duration // ... within this window
	BlockFor   time.Duration // ... blocks the source for this long

	// AdmitRate is how many new sources per second get a per-source
	// entry (0: DefaultAdmitRate); AdmitBurst its bucket's depth.
	AdmitRate  float64
	AdmitBurst uint32

	DryRun bool // count what would be dropped, drop nothing
}

// DefaultAdmitRate: new per-source entries per second. Far above the rate
// at which real clients or a scanner appear, far below a spoofed flood.
const DefaultAdmitRate = 5000

// MaxScanPorts is the scan rule's bound: the per-source port bitmap has
// 256 bits (ports counted by their low byte).
const MaxScanPorts = 256

// MaxSYNSignatures bounds GuardRules.DropSYNSignatures (GUARD_MAX_SIGS).
const MaxSYNSignatures = 16

// MaxGuardCIDRs bounds the allow and block lists together: each rule set's
// trie holds that many, and the hash holds both sets' prefixes while a
// reload installs the new set beside the old.
const MaxGuardCIDRs = 131072

// Validate checks what the kernel side cannot represent.
func (g GuardRules) Validate() error {
	if n := len(g.Allow) + len(g.Block); n > MaxGuardCIDRs {
		return fmt.Errorf("%d allow and block CIDRs: at most %d", n, MaxGuardCIDRs)
	}
	if len(g.DropSYNSignatures) > MaxSYNSignatures {
		return fmt.Errorf("%d SYN signatures to drop: at most %d", len(g.DropSYNSignatures), MaxSYNSignatures)
	}
	for _, p := range append(append([]netip.Prefix(nil), g.Allow...), g.Block...) {
		if !p.IsValid() {
			return fmt.Errorf("invalid CIDR %v", p)
		}
	}
	if g.SYNRate < 0 || g.SYNRateGlobal < 0 || g.AdmitRate < 0 {
		return errors.New("rates must not be negative")
	}
	if g.SYNRate > 0 && g.SYNBurst == 0 {
		return errors.New("--syn-rate needs --syn-burst of at least 1")
	}
	if g.ScanPorts > MaxScanPorts {
		return fmt.Errorf("--scan-ports %d: at most %d", g.ScanPorts, MaxScanPorts)
	}
	if g.ScanPorts == 1 {
		return errors.New("--scan-ports 1 would block every client on its first SYN: at least 2")
	}
	if g.ScanPorts > 0 && (g.ScanWindow <= 0 || g.BlockFor <= 0) {
		return errors.New("--scan-ports needs a positive --scan-window and --block-for")
	}
	return nil
}

// interval and tolerance of a GCRA bucket of rate per second and depth burst.
func gcra(rate float64, burst uint32) (interval, tolerance uint64) {
	if rate <= 0 {
		return 0, 0
	}
	interval = uint64(1e9 / rate)
	if interval == 0 {
		interval = 1
	}
	if burst == 0 {
		burst = 1
	}
	return interval, uint64(burst-1) * interval
}

// kernel is the rule set as struct guard_rules.
func (g GuardRules) kernel() *bpfobj.PacketGuardRules {
	k := &bpfobj.PacketGuardRules{}
	if g.DryRun {
		k.DryRun = 1
	}
	for _, p := range append(append([]netip.Prefix(nil), g.Allow...), g.Block...) {
		if p.Addr().Unmap().Is4() {
			k.HasCidrs |= 1
		} else {
			k.HasCidrs |= 2
		}
	}
	for _, p := range g.DropPorts {
		k.DropPort[p>>6] |= 1 << (p & 63)
		k.HasPortRules = 1
	}
	for _, p := range g.DropSYNPorts {
		k.DropSynPort[p>>6] |= 1 << (p & 63)
		k.HasPortRules = 1
	}
	if g.RequireMSS {
		k.RequireMss = 1
	}
	for i, sig := range g.DropSYNSignatures {
		k.DropSigs[i] = uint64(sig)
		k.SigCount = uint8(i + 1)
	}
	k.SynInterval, k.SynTolerance = gcra(g.SYNRate, g.SYNBurst)
	gb := g.SYNBurstGlobal
	if gb == 0 {
		gb = uint32(g.SYNRateGlobal / 10)
	}
	k.GlobalInterval, k.GlobalTolerance = gcra(g.SYNRateGlobal, gb)
	admit, ab := g.AdmitRate, g.AdmitBurst
	if admit == 0 {
		admit = DefaultAdmitRate
	}
	if ab == 0 {
		ab = uint32(admit / 10)
	}
	k.AdmitInterval, k.AdmitTolerance = gcra(admit, ab)
	if g.ScanPorts > 0 {
		k.ScanPorts = g.ScanPorts
		k.ScanWindow = uint64(g.ScanWindow)
		k.BlockFor = uint64(g.BlockFor)
	}
	// The coarse clock steps by a tick: a bucket then admits at most its
	// burst per tick, which is its rate only if the burst lasts a tick.
	tick := coarseTick()
	k.CoarseClock = 1
	for _, b := range [][2]uint64{{k.SynInterval, k.SynTolerance}, {k.GlobalInterval, k.GlobalTolerance}, {k.AdmitInterval, k.AdmitTolerance}} {
		if b[0] != 0 && (tick == 0 || b[0]+b[1] < tick) {
			k.CoarseClock = 0
		}
	}
	return k
}

var coarseTickOnce = sync.OnceValue(func() uint64 {
	var ts unix.Timespec
	if err := unix.ClockGetres(unix.CLOCK_MONOTONIC_COARSE, &ts); err != nil {
		return 0 // unknown: the precise clock
	}
	return uint64(ts.Nano())
})

// coarseHelper says whether XDP and TC programs may call
// bpf_ktime_get_coarse_ns (5.11+); without it the stage keeps the precise
// clock whatever the rule set says.
var coarseHelper = sync.OnceValue(func() bool {
	return features.HaveProgramHelper(ebpf.XDP, asm.FnKtimeGetCoarseNs) == nil &&
		features.HaveProgramHelper(ebpf.SchedCLS, asm.FnKtimeGetCoarseNs) == nil
})

// coarseTick is the step of bpf_ktime_get_coarse_ns(): the kernel's tick
// (CLOCK_MONOTONIC_COARSE's resolution). Tests may replace it.
var coarseTick = coarseTickOnce

// guardHashLens is GUARD_HASH_LENS: a family whose prefixes have more
// distinct lengths goes to the trie.
const guardHashLens = 4

// guardCidrBits is GUARD_CIDR_BITS, the prefilter's bits per set.
const (
	guardCidrBits  = 17
	guardCidrWords = 1 << (guardCidrBits - 6)
)

// cidrSlot is guard_cidr_probe's bit for a hash key (the same hash).
func cidrSlot(k *bpfobj.PacketGuardCidrHkey) uint32 {
	h := (k.Addr[0] ^ (uint32(k.Family)<<8 | uint32(k.Plen))) * 0x9e3779b1
	h = (h ^ k.Addr[1]) * 0x85ebca6b
	h = (h ^ k.Addr[2]) * 0xc2b2ae35
	h = (h ^ k.Addr[3]) * 0x9e3779b1
	return h >> (32 - guardCidrBits)
}

// cidrMask is the mask of a prefix of bits as guard_cidr_hkey's words
// (wire order bytes, read as the BPF program reads them: little endian).
func cidrMask(bits int) [4]uint32 {
	var b [16]byte
	for i := 0; i < bits; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	var m [4]uint32
	for i := range m {
		m[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return m
}

// cidrHashKey is p (normalized by cidrEntries) as guard_cidr_hkey of set.
func cidrHashKey(p netip.Prefix, set uint32) bpfobj.PacketGuardCidrHkey {
	k := bpfobj.PacketGuardCidrHkey{Set: uint8(set), Plen: uint8(p.Bits()), Family: 6}
	var b [16]byte
	if p.Addr().Is4() {
		k.Family = 4
		a := p.Addr().As4()
		copy(b[:], a[:])
	} else {
		b = p.Addr().As16()
	}
	for i := range k.Addr {
		k.Addr[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return k
}

// cidrPlan splits the merged prefixes between the hash scheme and the
// trie, per family, and fills the rule set's lengths and masks.
func cidrPlan(k *bpfobj.PacketGuardRules, entries map[netip.Prefix]uint8) (hash, trie map[netip.Prefix]uint8) {
	var lens [2][]int // [0] IPv4, [1] IPv6
	for p := range entries {
		f := 1
		if p.Addr().Is4() {
			f = 0
		}
		if !slices.Contains(lens[f], p.Bits()) {
			lens[f] = append(lens[f], p.Bits())
		}
	}
	for i := range guardHashLens {
		k.Lens4[i], k.Lens6[i] = guardLenNone, guardLenNone
	}
	var fast [2]bool
	for f := range lens {
		if len(lens[f]) == 0 || len(lens[f]) > guardHashLens {
			continue // none, or the trie
		}
		fast[f] = true
		k.CidrHash |= 1 << f
		slices.SortFunc(lens[f], func(a, b int) int { return b - a }) // longest first
		for i, l := range lens[f] {
			m := cidrMask(l)
			if f == 0 {
				k.Lens4[i], k.Mask4[i] = uint8(l), m[0]
			} else {
				k.Lens6[i], k.Mask6[i] = uint8(l), m
			}
		}
	}
	hash, trie = map[netip.Prefix]uint8{}, map[netip.Prefix]uint8{}
	for p, v := range entries {
		f := 1
		if p.Addr().Is4() {
			f = 0
		}
		if fast[f] {
			hash[p] = v
		} else {
			trie[p] = v
		}
	}
	return hash, trie
}

const guardLenNone = 0xff

// cidrKey is p as struct guard_cidr: the family's 8 bits, then the address.
func cidrKey(p netip.Prefix) bpfobj.PacketGuardCidr {
	p = p.Masked()
	k := bpfobj.PacketGuardCidr{Prefixlen: 8 + uint32(p.Bits())}
	a := p.Addr()
	if a.Is4() || a.Is4In6() {
		k.Family = 4
		b := a.Unmap().As4()
		copy(k.Addr[:], b[:])
		if a.Is4In6() {
			k.Prefixlen = 8 + uint32(max(p.Bits()-96, 0))
		}
	} else {
		k.Family = 6
		b := a.As16()
		copy(k.Addr[:], b[:])
	}
	return k
}

// guardState is the user-space side of the stage's double buffer.
type guardState struct {
	active uint32 // the set in force
	loaded bool   // a rule set was installed
	gen    uint32 // the last rule set's number (guard_rules.gen; never 0)
}

func (p *PacketPath) guardTrie(set uint32) *ebpf.Map {
	if set == 0 {
		return p.Maps.GuardCidrs0
	}
	return p.Maps.GuardCidrs1
}

// Values in the CIDR trie (bpf/guard.h).
const (
	cidrAllow = 1
	cidrBlock = 2
)

// cidrEntries merges the allow and block lists into one trie's entries,
// so that the longest match tells everything (see bpf/guard.h): a prefix
// that is allowed and lies inside a blocked one, or blocked and inside an
// allowed one, is both.
func cidrEntries(allow, block []netip.Prefix) map[netip.Prefix]uint8 {
	norm := func(p netip.Prefix) netip.Prefix {
		if p.Addr().Is4In6() {
			return netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0)).Masked()
		}
		return p.Masked()
	}
	inside := func(p netip.Prefix, of []netip.Prefix) bool {
		for _, o := range of {
			o = norm(o)
			if o.Bits() <= p.Bits() && o.Contains(p.Addr()) {
				return true
			}
		}
		return false
	}
	out := map[netip.Prefix]uint8{}
	for _, b := range block {
		b = norm(b)
		out[b] |= cidrBlock
		if inside(b, allow) {
			out[b] |= cidrAllow
		}
	}
	for _, a := range allow {
		a = norm(a)
		out[a] |= cidrAllow
		if inside(a, block) {
			out[a] |= cidrBlock
		}
	}
	return out
}

// SetGuardRules installs g: it fills the rule set not in force, then flips
// guard_active, so every packet is decided by either the old rules or the
// new ones, never by a half-written set and never by none. On error the
// old rules stay in force.
func (p *PacketPath) SetGuardRules(g GuardRules) error {
	if !p.guardOn {
		return errors.New("guard rules: the packet path was loaded without the guard stage")
	}
	if err := g.Validate(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	next := p.guard.active ^ 1
	if !p.guard.loaded {
		next = p.guard.active
	}
	trie := p.guardTrie(next)
	if err := clearMap(trie); err != nil {
		return fmt.Errorf("guard rules: clear the spare CIDR set: %w", err)
	}
	if err := p.clearCidrHash(next); err != nil {
		return fmt.Errorf("guard rules: clear the spare CIDR set: %w", err)
	}
	kr := g.kernel()
	// A new number for every set installed: each CPU's cached CIDR
	// answer (guard_cidr_last) holds the number it was computed under.
	p.guard.gen++
	if p.guard.gen == 0 {
		p.guard.gen = 1
	}
	kr.Gen = p.guard.gen
	hashed, trieEntries := cidrPlan(kr, cidrEntries(g.Allow, g.Block))
	for pfx, v := range trieEntries {
		k := cidrKey(pfx)
		if err := trie.Put(&k, &v); err != nil {
			return fmt.Errorf("guard rules: add %v: %w", pfx, err)
		}
	}
	bits := make([]uint64, guardCidrWords)
	for pfx, v := range hashed {
		k := cidrHashKey(pfx, next)
		if err := p.Maps.GuardCidrHash.Put(&k, &v); err != nil {
			return fmt.Errorf("guard rules: add %v: %w", pfx, err)
		}
		slot := cidrSlot(&k)
		bits[slot>>6] |= 1 << (slot & 63)
	}
	for i, w := range bits {
		if err := p.Maps.GuardCidrBits.Put(uint32(int(next)*guardCidrWords+i), w); err != nil {
			return fmt.Errorf("guard rules: write the CIDR bitmap: %w", err)
		}
	}
	if err := p.Maps.GuardRuleSets.Put(next, kr); err != nil {
		return fmt.Errorf("guard rules: write rule set: %w", err)
	}
	// The buckets start full under new rules: their state was measured in
	// another rate's intervals.
	for i := uint32(0); i < 2; i++ {
		if err := p.Maps.GuardBuckets.Put(i, uint64(0)); err != nil {
			return fmt.Errorf("guard rules: reset buckets: %w", err)
		}
	}
	if err := p.Maps.GuardActive.Put(uint32(0), next); err != nil {
		return fmt.Errorf("guard rules: switch to the new set: %w", err)
	}
	p.guard.active, p.guard.loaded = next, true
	return nil
}

func clearMap(m *ebpf.Map) error {
	var keys []bpfobj.PacketGuardCidr
	var k bpfobj.PacketGuardCidr
	var v uint8
	it := m.Iterate()
	for it.Next(&k, &v) {
		keys = append(keys, k)
	}
	if err := it.Err(); err != nil {
		return err
	}
	for i := range keys {
		if err := m.Delete(&keys[i]); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return err
		}
	}
	return nil
}

// clearCidrHash deletes set's entries from the shared CIDR hash.
func (p *PacketPath) clearCidrHash(set uint32) error {
	var keys []bpfobj.PacketGuardCidrHkey
	var k bpfobj.PacketGuardCidrHkey
	var v uint8
	it := p.Maps.GuardCidrHash.Iterate()
	for it.Next(&k, &v) {
		if uint32(k.Set) == set {
			keys = append(keys, k)
		}
	}
	if err := it.Err(); err != nil {
		return err
	}
	for i := range keys {
		if err := p.Maps.GuardCidrHash.Delete(&keys[i]); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return err
		}
	}
	return nil
}

// GuardCounters sums the guard stage's per-CPU counters.
func (p *PacketPath) GuardCounters() (GuardCounters, error) {
	var perCPU []GuardCounters
	var sum GuardCounters
	if err := p.Maps.GuardStats.Lookup(uint32(0), &perCPU); err != nil {
		return sum, fmt.Errorf("read guard counters: %w", err)
	}
	for _, c := range perCPU {
		for i := range sum.Matched {
			sum.Matched[i] += c.Matched[i]
		}
		sum.Packets += c.Packets
		sum.Dropped += c.Dropped
		sum.ScanBlocks += c.ScanBlocks
		sum.SourcesAdmitted += c.SourcesAdmitted
		sum.SourcesRefused += c.SourcesRefused
		sum.SourcesFull += c.SourcesFull
	}
	return sum, nil
}

// GuardSource is one source's guard state.
type GuardSource struct {
	Addr         netip.Addr
	SYNs         uint64
	BlockedUntil time.Duration // kernel monotonic time (0: never blocked)
	BlockStarted time.Duration
}

// GuardSources lists the per-source entries. The LRU may evict while the
// walk runs; what the walk saw is returned.
func (p *PacketPath) GuardSources() ([]GuardSource, error) {
	var out []GuardSource
	add := func(k *bpfobj.PacketGuardSourceKey, v *bpfobj.PacketGuardSource) {
		var a netip.Addr
		if k.Family == 4 {
			a = netip.AddrFrom4([4]byte(k.Addr[:4]))
		} else {
			a = netip.AddrFrom16(k.Addr)
		}
		out = append(out, GuardSource{Addr: a, SYNs: v.Syns,
			BlockedUntil: time.Duration(v.BlockedUntil), BlockStarted: time.Duration(v.BlockStarted)})
	}
	// In batches first: a full table (65,536 entries) took 150 ms one
	// entry at a time, two syscalls each (the agent walks it per scrape).
	if done, err := p.guardSourcesBatched(add); done {
		return out, err
	}
	out = out[:0]
	var k bpfobj.PacketGuardSourceKey
	var v bpfobj.PacketGuardSource
	it := p.Maps.GuardSources.Iterate()
	for it.Next(&k, &v) {
		add(&k, &v)
	}
	if err := it.Err(); err != nil && !errors.Is(err, ebpf.ErrIterationAborted) {
		return out, fmt.Errorf("read guard sources: %w", err)
	}
	return out, nil
}

// guardSourcesBatched walks the sources with BPF_MAP_LOOKUP_BATCH. done is
// false when the kernel refused the batch before any entry was read (the
// caller walks one entry at a time instead).
func (p *PacketPath) guardSourcesBatched(add func(*bpfobj.PacketGuardSourceKey, *bpfobj.PacketGuardSource)) (done bool, err error) {
	const chunk = 4096
	keys := make([]bpfobj.PacketGuardSourceKey, chunk)
	vals := make([]bpfobj.PacketGuardSource, chunk)
	var cursor ebpf.MapBatchCursor
	for first := true; ; first = false {
		n, err := p.Maps.GuardSources.BatchLookup(&cursor, keys, vals, nil)
		for i := 0; i < n; i++ {
			add(&keys[i], &vals[i])
		}
		switch {
		case errors.Is(err, ebpf.ErrKeyNotExist):
			return true, nil // the end
		case err != nil && first && n == 0:
			return false, nil
		case err != nil:
			return true, fmt.Errorf("read guard sources: %w", err)
		}
	}
}

// SetGuardClock sets the time of a packet path loaded with
// PacketConfig.GuardFakeClock (tests).
func (p *PacketPath) SetGuardClock(now time.Duration) error {
	return p.Maps.GuardClock.Put(uint32(0), uint64(now))
}

// MaxGuardSources bounds PacketConfig.GuardSources (the LRU is preallocated).
const MaxGuardSources = 1 << 20

func configureGuard(spec *ebpf.CollectionSpec, cfg PacketConfig) error {
	sources := spec.Maps[bpfobj.PacketMapGuardSources]
	if !cfg.Guard {
		sources.MaxEntries = 1                               // the stage is compiled out; keep its LRU small
		spec.Maps[bpfobj.PacketMapGuardKnown].MaxEntries = 1 // and its bitmap
		spec.Maps[bpfobj.PacketMapGuardCidrBits].MaxEntries = 1
		return nil
	}
	if cfg.GuardSources > MaxGuardSources {
		return fmt.Errorf("%d guard source entries: at most %d", cfg.GuardSources, MaxGuardSources)
	}
	if cfg.GuardSources > 0 {
		sources.MaxEntries = cfg.GuardSources
	}
	g := bpfobj.PacketGuardConfig{Enabled: 1}
	if cfg.GuardFakeClock {
		g.FakeClock = 1
	}
	if coarseHelper() {
		g.CoarseOk = 1
	}
	if err := spec.Variables[bpfobj.PacketVarGuardCfg].Set(g); err != nil {
		return fmt.Errorf("configure guard stage: %w", err)
	}
	return nil
}

// shareGuardMaps makes another slot's copy use slot 0's guard maps.
func (p *PacketPath) shareGuardMaps(r map[string]*ebpf.Map) {
	m := &p.Maps
	r[bpfobj.PacketMapGuardActive] = m.GuardActive
	r[bpfobj.PacketMapGuardCidrs0] = m.GuardCidrs0
	r[bpfobj.PacketMapGuardCidrs1] = m.GuardCidrs1
	r[bpfobj.PacketMapGuardCidrHash] = m.GuardCidrHash
	r[bpfobj.PacketMapGuardCidrBits] = m.GuardCidrBits
	r[bpfobj.PacketMapGuardCidrLast] = m.GuardCidrLast
	r[bpfobj.PacketMapGuardBuckets] = m.GuardBuckets
	r[bpfobj.PacketMapGuardClock] = m.GuardClock
	r[bpfobj.PacketMapGuardKnown] = m.GuardKnown // must follow GuardSources: a source's bit is set in one bitmap for all slots
	r[bpfobj.PacketMapGuardRuleSets] = m.GuardRuleSets
	r[bpfobj.PacketMapGuardSources] = m.GuardSources
	r[bpfobj.PacketMapGuardStats] = m.GuardStats
}

// clearGuardSources forgets every per-source entry (tests).
func (p *PacketPath) clearGuardSources() error {
	var keys []bpfobj.PacketGuardSourceKey
	var k bpfobj.PacketGuardSourceKey
	var v bpfobj.PacketGuardSource
	it := p.Maps.GuardSources.Iterate()
	for it.Next(&k, &v) {
		keys = append(keys, k)
	}
	for i := range keys {
		if err := p.Maps.GuardSources.Delete(&keys[i]); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return err
		}
	}
	return it.Err()
}

// guard is a packet-path command: it needs what flags and syn need.
func init() {
	CommandNeeds["guard"] = []Feature{FeatBPF, FeatPacketHook, FeatDefaultRoute}
	CommandCaps["guard"] = PacketPathCaps
}
