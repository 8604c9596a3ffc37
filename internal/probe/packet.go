// Package probe loads the BPF programs, attaches them through bpf_link
// (so a killed process leaves nothing behind) or, for TC on kernels
// without tcx, through tagged netlink TC filters that the next run
// removes, and detaches them.
package probe

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"

	"github.com/tcplens/tcplens/internal/bpfobj"
	"github.com/tcplens/tcplens/internal/pfilter"
)

// MaxInterfaces is how many interfaces one packet path can watch: the size
// of the per-CPU counters array in bpf/packet.c.
const MaxInterfaces = 64

// MaxSYNTableEntries bounds MaxTuples and MaxSources. Each table exists
// twice (one filling, one being read), preallocated: at this bound the two
// tuple tables alone take about 200 MB of kernel memory.
const MaxSYNTableEntries = 1 << 20

// PacketConfig is what the packet path needs to know before it is loaded.
type PacketConfig struct {
	TrackSYN  bool   // fill the SYN tuple and source tables
	MaxTuples uint32 // entries in each SYN tuple table (0: the object's default)
	// MaxSources is the entries in each SYN source table (0: the default).
	MaxSources uint32
	// SourceThreshold is how many SYNs a source sends (on one CPU, in one
	// interval, as the sketch estimates it) before it gets an exact entry;
	// 0 or 1: from its first SYN, unless a flood drowns it out.
	SourceThreshold uint32
	DropSYNPorts    []uint16 // drop SYN-without-ACK to these destination ports
	// SYNSignatures counts received SYNs (without ACK) per TCP-options
	// signature (bpf/synsig.h), read by SwapSYN; MaxSignatures is the
	// entries of each signature table (0: the object's default, 4096).
	SYNSignatures bool
	MaxSignatures uint32
	// Direction is which packets are seen (0: DirIn). Egress is counted
	// only: SYN tables and drop rules are for packets received.
	Direction Direction
	// Filter selects the packets every stage sees (empty: all TCP).
	Filter pfilter.Program
	// Capture, when set, copies matching packets into the capture ring.
	Capture *CaptureConfig

	// Guard switches the guard stage on (bpf/guard.h); its rules come
	// later, through SetGuardRules. GuardFakeClock (tests) makes its time
	// the value SetGuardClock sets.
	Guard          bool
	GuardFakeClock bool
	GuardSources   uint32 // entries of the per-source LRU (0: the object's default)
	// GuardRules, if set, are in force before LoadPacketPath returns, so
	// nothing is attached without them.
	GuardRules *GuardRules
}

// Validate checks the limits the kernel would otherwise refuse at load
// time with an unhelpful errno.
func (cfg PacketConfig) Validate() error {
	if cfg.MaxTuples > MaxSYNTableEntries {
		return fmt.Errorf("%d SYN tuple entries: at most %d", cfg.MaxTuples, MaxSYNTableEntries)
	}
	if cfg.MaxSignatures > MaxSYNTableEntries {
		return fmt.Errorf("%d SYN signature entries: at most %d", cfg.MaxSignatures, MaxSYNTableEntries)
	}
	if cfg.MaxSources > MaxSYNTableEntries {
		return fmt.Errorf("%d SYN source entries: at most %d", cfg.MaxSources, MaxSYNTableEntries)
	}
	return nil
}

// PacketPath is the packet-path programs loaded once per interface, all
// sharing one set of maps.
type PacketPath struct {
	Maps     bpfobj.PacketMaps
	Attached []Attachment // by slot; guarded by mu once Follow runs

	mu      sync.Mutex
	colls   []*ebpf.Collection
	syn     *synTables // nil unless TrackSYN or SYNSignatures
	guardOn bool
	guard   guardState
	follow  *follower
	dir     Direction
}

// Attachment is the packet path attached to one interface: its ingress
// program, its egress program, or both (as the Direction asks).
type Attachment struct {
	Interface Interface
	Hook      Hook   // ingress: HookXDP or HookTC ("" when only egress is watched)
	Mode      string // ingress: ModeNative, ModeGeneric (XDP), ModeTCX or ModeNetlink (TC)
	// EgressMode is how the egress program is attached, always on TC:
	// ModeTCX or ModeNetlink ("" when egress is not watched).
	EgressMode string
	Slot       uint32 // index of the interface's counters
	// StaleRemoved are filters of killed tcplens runs removed from the
	// interface before attaching.
	StaleRemoved []TCFilter
	closer       io.Closer // the bpf_link, or the netlink TC filter
	egressCloser io.Closer // the same for egress
}

// close detaches both directions. Egress goes first: with netlink TC the
// ingress filter made the clsact qdisc and removes it when it goes last.
func (a *Attachment) close() error {
	var errs []error
	for _, c := range []*io.Closer{&a.egressCloser, &a.closer} {
		if *c != nil {
			errs = append(errs, (*c).Close())
			*c = nil
		}
	}
	return errors.Join(errs...)
}

// FlagCounters are the packet path's counters for one interface.
type FlagCounters = bpfobj.PacketFlagCounters

// LoadPacketSpec returns the packet path's CollectionSpec sized and
// configured for one interface slot.
func LoadPacketSpec(cfg PacketConfig, slot uint32) (*ebpf.CollectionSpec, error) {
	spec, err := bpfobj.LoadPacket()
	if err != nil {
		return nil, fmt.Errorf("read embedded packet-path object: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tuples, sources := spec.Maps[bpfobj.PacketMapSynTuples].InnerMap, spec.Maps[bpfobj.PacketMapSynSources].InnerMap
	switch {
	case !cfg.TrackSYN:
		// Only the template is made; keep it small.
		tuples.MaxEntries, sources.MaxEntries = 1, 1
	default:
		if cfg.MaxTuples > 0 {
			tuples.MaxEntries = cfg.MaxTuples
		}
		if cfg.MaxSources > 0 {
			sources.MaxEntries = cfg.MaxSources
		}
	}
	sigs := spec.Maps[bpfobj.PacketMapSynSigs].InnerMap
	switch {
	case !cfg.SYNSignatures:
		sigs.MaxEntries = 1
	case cfg.MaxSignatures > 0:
		sigs.MaxEntries = cfg.MaxSignatures
	}
	if cfg.SYNSignatures {
		if err := spec.Variables[bpfobj.PacketVarSynSigCfg].Set(bpfobj.PacketSynSigConfig{Enabled: 1}); err != nil {
			return nil, fmt.Errorf("configure SYN signatures: %w", err)
		}
	} else {
		// The counting programs are reached only by the tail calls in the
		// view's code, which the verifier drops as dead with it off: load
		// neither, and leave their program arrays empty.
		delete(spec.Programs, bpfobj.PacketProgTcplensSynSigXdp)
		delete(spec.Programs, bpfobj.PacketProgTcplensSynSigTc)
		spec.Maps[bpfobj.PacketMapSynSigTailXdp].Contents = nil
		spec.Maps[bpfobj.PacketMapSynSigTailTc].Contents = nil
	}
	kcfg := bpfobj.PacketPacketConfig{Slot: slot, SourceThreshold: cfg.SourceThreshold}
	if cfg.TrackSYN {
		kcfg.TrackSyn = 1
	}
	if len(cfg.DropSYNPorts) > 0 {
		kcfg.DropSynPorts = 1
	}
	if err := spec.Variables[bpfobj.PacketVarCfg].Set(kcfg); err != nil {
		return nil, fmt.Errorf("configure packet path: %w", err)
	}
	if err := configureFilterAndCapture(spec, cfg); err != nil {
		return nil, err
	}
	if err := configureGuard(spec, cfg); err != nil {
		return nil, err
	}
	return spec, nil
}

// LoadPacketPath loads one copy of the packet path per interface (without
// attaching it). Slot i belongs to ifaces[i].
func LoadPacketPath(cfg PacketConfig, n int) (*PacketPath, error) {
	if n < 1 || n > MaxInterfaces {
		return nil, fmt.Errorf("packet path watches 1 to %d interfaces, not %d", MaxInterfaces, n)
	}
	p := &PacketPath{dir: cfg.Direction, guardOn: cfg.Guard}
	if p.dir == 0 {
		p.dir = DirIn
	}
	for slot := 0; slot < n; slot++ {
		spec, err := LoadPacketSpec(cfg, uint32(slot))
		if err != nil {
			p.Close()
			return nil, err
		}
		opts := ebpf.CollectionOptions{}
		if slot > 0 {
			opts.MapReplacements = map[string]*ebpf.Map{
				bpfobj.PacketMapCounters:        p.Maps.Counters,
				bpfobj.PacketMapSynTuples:       p.Maps.SynTuples,
				bpfobj.PacketMapSynSources:      p.Maps.SynSources,
				bpfobj.PacketMapSynPercpu:       p.Maps.SynPercpu,
				bpfobj.PacketMapSynSigs:         p.Maps.SynSigs,
				bpfobj.PacketMapSynSigUntracked: p.Maps.SynSigUntracked,
				bpfobj.PacketMapDropPorts:       p.Maps.DropPorts,
				bpfobj.PacketMapCaptureRing:     p.Maps.CaptureRing,
				bpfobj.PacketMapCaptureStats:    p.Maps.CaptureStats,
				bpfobj.PacketMapCaptureScratch:  p.Maps.CaptureScratch,
			}
			p.shareGuardMaps(opts.MapReplacements)
		}
		coll, err := ebpf.NewCollectionWithOptions(spec, opts)
		if err != nil {
			p.Close()
			return nil, explainLoadError("load packet-path programs", err)
		}
		p.colls = append(p.colls, coll)
		if slot == 0 {
			if err := coll.Assign(&p.Maps); err != nil {
				p.Close()
				return nil, fmt.Errorf("packet-path maps: %w", err)
			}
			if cfg.TrackSYN || cfg.SYNSignatures {
				if p.syn, err = newSYNTables(spec, &p.Maps, cfg.TrackSYN, cfg.SYNSignatures); err != nil {
					p.Close()
					return nil, err
				}
			}
		}
	}
	if err := p.setDropPorts(cfg.DropSYNPorts); err != nil {
		p.Close()
		return nil, err
	}
	if cfg.Guard && cfg.GuardRules != nil {
		if err := p.SetGuardRules(*cfg.GuardRules); err != nil {
			p.Close()
			return nil, err
		}
	}
	return p, nil
}

func (p *PacketPath) setDropPorts(ports []uint16) error {
	words := map[uint32]uint64{}
	for _, port := range ports {
		words[uint32(port)>>6] |= 1 << (port & 63)
	}
	for idx, w := range words {
		if err := p.Maps.DropPorts.Put(idx, w); err != nil {
			return fmt.Errorf("set SYN drop ports: %w", err)
		}
	}
	return nil
}

// Program returns slot's program for hook, for tests and benchmarks.
func (p *PacketPath) Program(slot int, hook Hook) *ebpf.Program {
	progs := p.colls[slot].Programs
	if hook == HookTC {
		return progs[bpfobj.PacketProgTcplensTc]
	}
	if prog := progs[bpfobj.PacketProgTcplensXdp]; prog != nil {
		return prog
	}
	return progs[bpfobj.PacketProgTcplensXdpCapture] // loaded instead when capturing
}

// EgressProgram returns slot's egress program, for tests and benchmarks.
func (p *PacketPath) EgressProgram(slot int) *ebpf.Program {
	return p.colls[slot].Programs[bpfobj.PacketProgTcplensTcEgress]
}

// Direction is which packets the path watches.
func (p *PacketPath) Direction() Direction { return p.dir }

// Attach attaches slot's program to iface with hook: the first of the
// hook's trials that works. It first removes TC filters that a killed
// tcplens left on iface (they would go on running a dead copy of the
// program). On failure nothing of slot stays attached.
func (p *PacketPath) Attach(slot int, iface Interface, hook Hook) error {
	a, err := p.attach(slot, iface, hook)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.Attached = append(p.Attached, a)
	p.mu.Unlock()
	return nil
}

func (p *PacketPath) attach(slot int, iface Interface, hook Hook) (Attachment, error) {
	a := Attachment{Interface: iface, Slot: uint32(slot)}
	removed, err := RemoveStaleTCFilters(iface)
	if err != nil {
		return a, err
	}
	a.StaleRemoved = removed
	// Removing the last stale filter leaves a clsact qdisc that the killed
	// tcplens most likely made, and nobody uses: remove it too.
	if len(removed) > 0 && clsactEmpty(iface.Index) {
		_ = netlink.QdiscDel(clsact(iface.Index))
	}
	trials := hook.trials(iface)
	if len(trials) == 0 {
		return a, fmt.Errorf("unknown hook %q", hook)
	}
	if p.dir.Has(DirIn) {
		tr, closer, err := tryTrials(iface, "", trials, func(tr hookTrial) (io.Closer, error) {
			return p.attachIngress(slot, iface, tr)
		})
		if err != nil {
			return a, err
		}
		a.Hook, a.Mode, a.closer = tr.hook, tr.mode, closer
	}
	if p.dir.Has(DirOut) {
		tr, closer, err := tryTrials(iface, " egress", egressTrials(hook), func(tr hookTrial) (io.Closer, error) {
			return p.attachEgress(slot, iface, tr)
		})
		if err != nil {
			a.close()
			return a, err
		}
		a.EgressMode, a.egressCloser = tr.mode, closer
	}
	return a, nil
}

// tryTrials attaches with the first of trials that works.
func tryTrials(iface Interface, what string, trials []hookTrial, attach func(hookTrial) (io.Closer, error)) (hookTrial, io.Closer, error) {
	var tried []string
	for i, tr := range trials {
		closer, err := attach(tr)
		if err == nil {
			return tr, closer, nil
		}
		err = explainAttach(err)
		// Without privileges the next trial would be refused as well.
		if i == len(trials)-1 || errors.Is(err, ErrPrivileges) {
			prefix := ""
			if len(tried) > 0 {
				prefix = strings.Join(tried, "; ") + "; "
			}
			return tr, nil, fmt.Errorf("attach to %s%s: %s%s %s: %w", iface.Name, what, prefix, tr.hook, tr.mode, err)
		}
		tried = append(tried, fmt.Sprintf("%s %s: %v", tr.hook, tr.mode, err))
	}
	return hookTrial{}, nil, fmt.Errorf("attach to %s%s: nothing to try", iface.Name, what)
}

// attachIngress attaches slot's ingress program to iface with tr.
func (p *PacketPath) attachIngress(slot int, iface Interface, tr hookTrial) (io.Closer, error) {
	switch tr.mode {
	case ModeTCX:
		return link.AttachTCX(link.TCXOptions{
			Interface: iface.Index,
			Program:   p.Program(slot, HookTC),
			Attach:    ebpf.AttachTCXIngress,
		})
	case ModeNetlink:
		t, err := attachTCNetlink(p.Program(slot, HookTC), iface)
		if err != nil {
			return nil, err
		}
		return t, nil
	case ModeNative, ModeGeneric:
		flags := link.XDPDriverMode
		if tr.mode == ModeGeneric {
			flags = link.XDPGenericMode
		}
		return link.AttachXDP(link.XDPOptions{Program: p.Program(slot, HookXDP), Interface: iface.Index, Flags: flags})
	}
	return nil, fmt.Errorf("unknown attach mode %q", tr.mode)
}

// Attachments is a copy of what is attached now (Follow may replace an
// attachment while the caller reads).
func (p *PacketPath) Attachments() []Attachment {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Attachment(nil), p.Attached...)
}

// Slots is how many interfaces the packet path was loaded for.
func (p *PacketPath) Slots() int { return len(p.colls) }

// Detach stops following interfaces and detaches every program, keeping
// the maps, so that a last read sees counts no packet changes any more.
func (p *PacketPath) Detach() error {
	p.stopFollowing()
	var errs []error
	p.mu.Lock()
	for i := range p.Attached {
		a := &p.Attached[i]
		// Closers are nil once the interface went away.
		if err := a.close(); err != nil {
			errs = append(errs, fmt.Errorf("detach from %s: %w", a.Interface.Name, err))
		}
	}
	p.Attached = nil
	p.mu.Unlock()
	return errors.Join(errs...)
}

// Close detaches everything and releases the programs and maps.
func (p *PacketPath) Close() error {
	err := p.Detach()
	for _, c := range p.colls {
		c.Close()
	}
	p.colls = nil
	if p.syn != nil {
		p.syn.close()
		p.syn = nil
	}
	return err
}

// Counters sums one interface's per-CPU ingress counters.
func (p *PacketPath) Counters(slot uint32) (FlagCounters, error) {
	return p.DirCounters(slot, DirIn)
}

// DirCounters sums one interface's per-CPU counters of one direction
// (DirIn or DirOut).
func (p *PacketPath) DirCounters(slot uint32, dir Direction) (FlagCounters, error) {
	var perCPU []FlagCounters
	if err := p.Maps.Counters.Lookup(counterKey(slot, dir), &perCPU); err != nil {
		return FlagCounters{}, fmt.Errorf("read counters: %w", err)
	}
	var sum FlagCounters
	for i := range perCPU {
		s, c := counterWords(&sum), counterWords(&perCPU[i])
		for j := range s {
			s[j] += c[j]
		}
	}
	return sum, nil
}

// SubCounters is a - b, counter by counter: what an interval added.
func SubCounters(a, b FlagCounters) FlagCounters {
	var d FlagCounters
	dw, aw, bw := counterWords(&d), counterWords(&a), counterWords(&b)
	for j := range dw {
		dw[j] = aw[j] - bw[j]
	}
	return d
}

// counterWords views the counters as the array of __u64 that struct
// flag_counters is (TestPacketStructLayouts checks it against BTF), so
// summing and subtracting need no list of fields to keep in step.
func counterWords(c *FlagCounters) *[unsafe.Sizeof(FlagCounters{}) / 8]uint64 {
	return (*[unsafe.Sizeof(FlagCounters{}) / 8]uint64)(unsafe.Pointer(c))
}
