package probe

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"

	"github.com/tcplens/tcplens/internal/bpfobj"
	"github.com/tcplens/tcplens/internal/events"
)

// SYN tracking keeps two tables of each kind (tuples, sources): the kernel
// fills the active one while user space reads the other. Swapping them
// through the one-slot outer array makes the kernel wait until no program
// still holds the old table (map-in-map updates do that), so a table is
// read whole and exactly, with no walk that an insert or eviction aborts.

// synBatch is how many entries one batch syscall moves. A hash map
// refuses a batch smaller than its fullest bucket (ENOSPC); 4096 is far
// above any bucket.
const synBatch = 4096

// sigBatch is the same for the per-CPU signature table, whose buckets hold
// as few entries.
const sigBatch = 1024

type synTables struct {
	maps                  *bpfobj.PacketMaps
	track                 bool // TrackSYN: the tuple and source tables exist
	tuples, spareTuples   *ebpf.Map
	sources, spareSources *ebpf.Map
	tupleKeys             []bpfobj.PacketSynTuple
	tupleVals             []uint64
	sourceKeys            []bpfobj.PacketSynSource
	sourceVals            []bpfobj.PacketSynSourceState
	zeroPerCPU            []bpfobj.PacketSynCpu
	// nil unless SYNSignatures; values are per CPU, ncpu per key
	sigs, spareSigs *ebpf.Map
	sigKeys         []bpfobj.PacketSynSigKey
	sigVals         []uint64
	ncpu            int
}

func newSYNTables(spec *ebpf.CollectionSpec, maps *bpfobj.PacketMaps, track, signatures bool) (*synTables, error) {
	t := &synTables{maps: maps, track: track}
	var err error
	mk := func(name string) *ebpf.Map {
		if err != nil {
			return nil
		}
		var m *ebpf.Map
		if m, err = ebpf.NewMap(spec.Maps[name].InnerMap); err != nil {
			err = explainLoadError("create SYN table "+name, err)
		}
		return m
	}
	if track {
		t.tuples, t.spareTuples = mk(bpfobj.PacketMapSynTuples), mk(bpfobj.PacketMapSynTuples)
		t.sources, t.spareSources = mk(bpfobj.PacketMapSynSources), mk(bpfobj.PacketMapSynSources)
	}
	if signatures {
		t.sigs, t.spareSigs = mk(bpfobj.PacketMapSynSigs), mk(bpfobj.PacketMapSynSigs)
	}
	if err != nil {
		t.close()
		return nil, err
	}
	if track {
		if err := maps.SynTuples.Put(uint32(0), t.tuples); err != nil {
			t.close()
			return nil, fmt.Errorf("install SYN tuple table: %w", err)
		}
		if err := maps.SynSources.Put(uint32(0), t.sources); err != nil {
			t.close()
			return nil, fmt.Errorf("install SYN source table: %w", err)
		}
	}
	if t.sigs != nil {
		if err := maps.SynSigs.Put(uint32(0), t.sigs); err != nil {
			t.close()
			return nil, fmt.Errorf("install SYN signature table: %w", err)
		}
	}
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		t.close()
		return nil, fmt.Errorf("count CPUs: %w", err)
	}
	t.zeroPerCPU = make([]bpfobj.PacketSynCpu, ncpu)
	t.ncpu = ncpu
	if t.sigs != nil {
		// A signature table is small (thousands of entries): smaller
		// batches keep the per-CPU value buffer small too.
		t.sigKeys, t.sigVals = make([]bpfobj.PacketSynSigKey, sigBatch), make([]uint64, sigBatch*ncpu)
	}
	t.tupleKeys, t.tupleVals = make([]bpfobj.PacketSynTuple, synBatch), make([]uint64, synBatch)
	t.sourceKeys, t.sourceVals = make([]bpfobj.PacketSynSource, synBatch), make([]bpfobj.PacketSynSourceState, synBatch)
	return t, nil
}

func (t *synTables) close() {
	for _, m := range []*ebpf.Map{t.tuples, t.spareTuples, t.sources, t.spareSources, t.sigs, t.spareSigs} {
		if m != nil {
			m.Close()
		}
	}
}

// SYNTuple is one connection attempt's 4-tuple as the packet path saw it.
type SYNTuple struct {
	Slot         uint32
	Src, Dst     netip.Addr
	Sport, Dport uint16
}

// SYNSource is one source address that sent SYNs on one interface.
type SYNSource struct {
	Slot uint32
	Addr netip.Addr
}

// SourceCount is what an exact source entry counted.
type SourceCount struct {
	SYNs    uint64 // SYNs since the source got its entry: exact
	Earlier uint64 // the sketch's estimate of SYNs before that, on the CPU that made the entry: an upper bound
}

// SYNSig is one TCP-options signature seen in SYNs on one interface.
type SYNSig struct {
	Slot uint32
	Sig  SYNSignature
}

// SYNTables is one interval's tuple, source and signature tables
// (Signatures nil unless SYNSignatures).
type SYNTables struct {
	Tuples     map[SYNTuple]uint64
	Sources    map[SYNSource]SourceCount
	Signatures map[SYNSig]uint64
}

// SwapSYN hands the kernel empty tables and returns the ones it filled
// since the last swap (since load, the first time). Their counts are
// exact: no program writes them any more when they are read. Together
// with the untracked counters, they account for every SYN counted in
// SynNoAck.
func (p *PacketPath) SwapSYN() (SYNTables, error) {
	t := p.syn
	if t == nil {
		return SYNTables{}, errors.New("SYN tracking is off")
	}
	// Each Put returns once no program uses the table it replaced.
	if t.track {
		if err := t.maps.SynTuples.Put(uint32(0), t.spareTuples); err != nil {
			return SYNTables{}, fmt.Errorf("swap SYN tuple table: %w", err)
		}
		t.tuples, t.spareTuples = t.spareTuples, t.tuples
		if err := t.maps.SynSources.Put(uint32(0), t.spareSources); err != nil {
			return SYNTables{}, fmt.Errorf("swap SYN source table: %w", err)
		}
		t.sources, t.spareSources = t.spareSources, t.sources
	}
	if t.sigs != nil {
		if err := t.maps.SynSigs.Put(uint32(0), t.spareSigs); err != nil {
			return SYNTables{}, fmt.Errorf("swap SYN signature table: %w", err)
		}
		t.sigs, t.spareSigs = t.spareSigs, t.sigs
	}
	// A new interval: the sketch and the full flags start over. Programs
	// racing with these writes can only make an estimate or a flag wrong
	// for a moment, never a count: the sketch decides only who gets an
	// exact entry, and a SYN that finds a flag set is counted as untracked.
	tuples, sources := map[SYNTuple]uint64{}, map[SYNSource]SourceCount{}
	var err error
	if t.track {
		if err := t.maps.SynPercpu.Put(uint32(0), t.zeroPerCPU); err != nil {
			return SYNTables{}, fmt.Errorf("reset SYN sketch: %w", err)
		}
		if tuples, err = t.drainTuples(t.spareTuples, true); err != nil {
			return SYNTables{}, err
		}
		if sources, err = t.drainSources(t.spareSources, true); err != nil {
			return SYNTables{}, err
		}
	}
	var sigs map[SYNSig]uint64
	if t.sigs != nil {
		if sigs, err = t.drainSigs(t.spareSigs, true); err != nil {
			return SYNTables{}, err
		}
	}
	return SYNTables{Tuples: tuples, Sources: sources, Signatures: sigs}, nil
}

// SYNSignatures reads the signature table the kernel is filling now,
// without swapping (tests).
func (p *PacketPath) SYNSignatures() (map[SYNSig]uint64, error) {
	if p.syn == nil || p.syn.sigs == nil {
		return nil, errors.New("SYN signatures are off")
	}
	return p.syn.drainSigs(p.syn.sigs, false)
}

// SYNSignaturesUntracked is how many SYNs received on slot found the
// signature table full since load (cumulative, like the flag counters).
// With the tables, it accounts for every SYN counted in SynNoAck.
func (p *PacketPath) SYNSignaturesUntracked(slot uint32) (uint64, error) {
	var perCPU []uint64
	if err := p.Maps.SynSigUntracked.Lookup(slot, &perCPU); err != nil {
		return 0, fmt.Errorf("read untracked SYN signatures: %w", err)
	}
	var sum uint64
	for _, v := range perCPU {
		sum += v
	}
	return sum, nil
}

func (t *synTables) drainSigs(m *ebpf.Map, del bool) (map[SYNSig]uint64, error) {
	out := map[SYNSig]uint64{}
	err := batch(m, t.sigKeys, t.sigVals, del, func(n int) {
		for i, k := range t.sigKeys[:n] {
			var sum uint64
			for _, v := range t.sigVals[i*t.ncpu : (i+1)*t.ncpu] {
				sum += v
			}
			out[SYNSig{Slot: k.Slot, Sig: SYNSignature(k.Sig)}] += sum
		}
	})
	if err != nil {
		return nil, fmt.Errorf("read SYN signatures: %w", err)
	}
	return out, nil
}

// SYNTuples reads the table the kernel is filling now, without swapping
// (tests; counts may move while it reads).
func (p *PacketPath) SYNTuples() (map[SYNTuple]uint64, error) {
	if p.syn == nil || !p.syn.track {
		return nil, errors.New("SYN tracking is off")
	}
	return p.syn.drainTuples(p.syn.tuples, false)
}

// SYNSources reads the source table the kernel is filling now.
func (p *PacketPath) SYNSources() (map[SYNSource]SourceCount, error) {
	if p.syn == nil || !p.syn.track {
		return nil, errors.New("SYN tracking is off")
	}
	return p.syn.drainSources(p.syn.sources, false)
}

// batch reads a whole table in batches, deleting what it read when del.
func batch(m *ebpf.Map, keys, vals any, del bool, each func(n int)) error {
	var cursor ebpf.MapBatchCursor
	for {
		var n int
		var err error
		if del {
			n, err = m.BatchLookupAndDelete(&cursor, keys, vals, nil)
		} else {
			n, err = m.BatchLookup(&cursor, keys, vals, nil)
		}
		each(n)
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (t *synTables) drainTuples(m *ebpf.Map, del bool) (map[SYNTuple]uint64, error) {
	out := map[SYNTuple]uint64{}
	err := batch(m, t.tupleKeys, t.tupleVals, del, func(n int) {
		for i, k := range t.tupleKeys[:n] {
			out[SYNTuple{
				Slot:  uint32(k.Slot),
				Src:   events.Addr(k.Family, k.Saddr),
				Dst:   events.Addr(k.Family, k.Daddr),
				Sport: k.Sport,
				Dport: k.Dport,
			}] += t.tupleVals[i]
		}
	})
	if err != nil {
		return nil, fmt.Errorf("read SYN tuples: %w", err)
	}
	return out, nil
}

func (t *synTables) drainSources(m *ebpf.Map, del bool) (map[SYNSource]SourceCount, error) {
	out := map[SYNSource]SourceCount{}
	err := batch(m, t.sourceKeys, t.sourceVals, del, func(n int) {
		for i, k := range t.sourceKeys[:n] {
			key := SYNSource{Slot: uint32(k.Slot), Addr: events.Addr(k.Family, k.Addr)}
			c := out[key]
			c.SYNs += t.sourceVals[i].Syns
			c.Earlier += t.sourceVals[i].Earlier
			out[key] = c
		}
	})
	if err != nil {
		return nil, fmt.Errorf("read SYN sources: %w", err)
	}
	return out, nil
}
