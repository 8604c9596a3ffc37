package probe

import (
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
)

// PacketPool is the packet path for a set of interfaces that changes while
// it runs (the agent): interfaces are attached as they appear and released
// as they go, each in a slot of its own. A released slot is reused, its
// counters zeroed, so the number of loaded copies stays at the most
// interfaces attached at once (at most MaxInterfaces).
type PacketPool struct {
	cfg  PacketConfig
	hook Hook

	mu    sync.Mutex
	path  *PacketPath
	slots []*Attachment // by slot; nil: free
}

// NewPacketPool loads the first copy of the packet path, attached nowhere.
func NewPacketPool(cfg PacketConfig, hook Hook) (*PacketPool, error) {
	p, err := LoadPacketPath(cfg, 1)
	if err != nil {
		return nil, err
	}
	return &PacketPool{cfg: cfg, hook: hook, path: p, slots: make([]*Attachment, 1)}, nil
}

// Attach attaches a free slot's program to iface (loading another copy
// when every slot is taken). Attaching an interface twice is a no-op.
func (pp *PacketPool) Attach(iface Interface) (Attachment, error) {
	if iface.Driver == "" {
		iface.Driver = interfaceDriver(iface.Name) // auto chooses the hook by it
	}
	pp.mu.Lock()
	defer pp.mu.Unlock()
	slot := -1
	for i, a := range pp.slots {
		if a != nil && a.Interface.Index == iface.Index {
			return *a, nil
		}
		if a == nil && slot < 0 {
			slot = i
		}
	}
	if slot < 0 {
		if len(pp.slots) >= MaxInterfaces {
			return Attachment{}, fmt.Errorf("attach to %s: already watching %d interfaces, the most one packet path can", iface.Name, MaxInterfaces)
		}
		if err := pp.grow(); err != nil {
			return Attachment{}, fmt.Errorf("attach to %s: %w", iface.Name, err)
		}
		slot = len(pp.slots)
		pp.slots = append(pp.slots, nil)
	}
	// The slot may have counted another interface before.
	if err := pp.zero(uint32(slot)); err != nil {
		return Attachment{}, fmt.Errorf("attach to %s: %w", iface.Name, err)
	}
	a, err := pp.path.attach(slot, iface, pp.hook)
	if err != nil {
		return Attachment{}, err
	}
	pp.slots[slot] = &a
	return a, nil
}

// grow loads one more copy of the program, sharing the first copy's maps
// (all but its own configuration).
func (pp *PacketPool) grow() error {
	slot := len(pp.path.colls)
	spec, err := LoadPacketSpec(pp.cfg, uint32(slot))
	if err != nil {
		return err
	}
	repl := map[string]*ebpf.Map{}
	for name, m := range pp.path.colls[0].Maps {
		if !strings.HasPrefix(name, ".") { // .rodata holds each slot's cfg
			repl[name] = m
		}
	}
	// The first copy's named maps are in path.Maps: Assign took them out
	// of its collection. Without them each later copy counted into maps of
	// its own, which nobody read (its counters stayed 0) and its guard
	// stage had no rules.
	maps := reflect.ValueOf(&pp.path.Maps).Elem()
	for i := 0; i < maps.NumField(); i++ {
		if m, ok := maps.Field(i).Interface().(*ebpf.Map); ok && m != nil {
			repl[maps.Type().Field(i).Tag.Get("ebpf")] = m
		}
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{MapReplacements: repl})
	if err != nil {
		return explainLoadError("load packet-path programs", err)
	}
	pp.path.colls = append(pp.path.colls, coll)
	return nil
}

func (pp *PacketPool) zero(slot uint32) error {
	zeros := make([]FlagCounters, ebpf.MustPossibleCPU())
	for _, dir := range []Direction{DirIn, DirOut} {
		if err := pp.path.Maps.Counters.Put(counterKey(slot, dir), zeros); err != nil {
			return fmt.Errorf("zero counters of slot %d: %w", slot, err)
		}
	}
	return nil
}

// Release detaches what is attached to the interface with index and frees
// its slot. deviceGone says the kernel already removed the device (and
// with it a netlink TC filter). It reports what was released.
func (pp *PacketPool) Release(index int, deviceGone bool) (Attachment, bool) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	for i, a := range pp.slots {
		if a == nil || a.Interface.Index != index {
			continue
		}
		if deviceGone {
			for _, c := range []io.Closer{a.closer, a.egressCloser} {
				if t, ok := c.(*tcAttachment); ok {
					t.deviceGone = true
				}
			}
		}
		a.close()
		pp.slots[i] = nil
		return *a, true
	}
	return Attachment{}, false
}

// Attachments is what is attached now.
func (pp *PacketPool) Attachments() []Attachment {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	var out []Attachment
	for _, a := range pp.slots {
		if a != nil {
			out = append(out, *a)
		}
	}
	return out
}

// Direction is which packets the pool's programs watch.
func (pp *PacketPool) Direction() Direction { return pp.path.Direction() }

// Counters sums one slot's per-CPU counters of one direction.
func (pp *PacketPool) Counters(slot uint32, dir Direction) (FlagCounters, error) {
	return pp.path.DirCounters(slot, dir)
}

// Programs are the loaded programs (one copy per slot, both hooks), by name
// with the slot appended, for their run-time statistics.
func (pp *PacketPool) Programs() map[string]*ebpf.Program {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	out := map[string]*ebpf.Program{}
	for slot, c := range pp.path.colls {
		for name, p := range c.Programs {
			out[fmt.Sprintf("%s/%d", name, slot)] = p
		}
	}
	return out
}

// SetGuardRules installs a new guard rule set for every slot: the slots
// share one set of guard maps (grow replaces them with the first copy's),
// so one flip switches all interfaces. See PacketPath.SetGuardRules.
func (pp *PacketPool) SetGuardRules(g GuardRules) error { return pp.path.SetGuardRules(g) }

// GuardCounters are the guard stage's counters, all slots together (they
// share one counter map).
func (pp *PacketPool) GuardCounters() (GuardCounters, error) { return pp.path.GuardCounters() }

// GuardSources lists the guard stage's per-source entries.
func (pp *PacketPool) GuardSources() ([]GuardSource, error) { return pp.path.GuardSources() }

// Close detaches everything and releases the programs and maps.
func (pp *PacketPool) Close() error {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	var errs []string
	for i, a := range pp.slots {
		if a != nil {
			if err := a.close(); err != nil {
				errs = append(errs, fmt.Sprintf("detach from %s: %v", a.Interface.Name, err))
			}
		}
		pp.slots[i] = nil
	}
	pp.path.Close()
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}
