package probe

// Layer 2: the packet path passes the verifier in every configuration, and
// the Go structs bpf2go generated agree with the C layouts in the object's BTF.

import (
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/tcplens/tcplens/internal/bpfobj"
	"github.com/tcplens/tcplens/internal/testutil"
)

// The configuration constants change what the verifier sees (dead branches
// are pruned), so each combination is its own program to verify.
func TestPacketPathVerifies(t *testing.T) {
	testutil.RequirePrivileged(t)
	for _, track := range []bool{false, true} {
		for _, drop := range [][]uint16{nil, {22, 443}} {
			cfg := PacketConfig{TrackSYN: track, DropSYNPorts: drop, MaxTuples: 128, MaxSources: 64}
			t.Run(fmt.Sprintf("track=%v,drop=%v", track, drop != nil), func(t *testing.T) {
				for _, slot := range []uint32{0, MaxInterfaces - 1} {
					spec, err := LoadPacketSpec(cfg, slot)
					if err != nil {
						t.Fatal(err)
					}
					if len(spec.Programs) != 3 {
						t.Errorf("packet object has %d programs, want tcplens_xdp, tcplens_tc and tcplens_tc_egress", len(spec.Programs))
					}
					coll, err := ebpf.NewCollection(spec)
					if err != nil {
						var verr *ebpf.VerifierError
						if errors.As(err, &verr) {
							t.Fatalf("slot %d: verifier rejects the packet path: %+v", slot, verr)
						}
						t.Fatalf("slot %d: load packet path: %v", slot, err)
					}
					for name := range spec.Programs {
						if coll.Programs[name] == nil {
							t.Errorf("slot %d: program %s missing after load", slot, name)
						}
					}
					if got, want := spec.Maps[bpfobj.PacketMapSynTuples].InnerMap.MaxEntries, map[bool]uint32{true: 128, false: 1}[track]; got != want {
						t.Errorf("syn_tuples tables have %d entries, want %d", got, want)
					}
					coll.Close()
				}
				// Several slots sharing one set of maps, as the CLI loads them.
				pp, err := LoadPacketPath(cfg, 3)
				if err != nil {
					t.Fatalf("load 3 slots: %v", err)
				}
				for slot := 0; slot < 3; slot++ {
					for _, hook := range hooks {
						if pp.Program(slot, hook) == nil {
							t.Errorf("slot %d has no %s program", slot, hook)
						}
					}
					if pp.EgressProgram(slot) == nil {
						t.Errorf("slot %d has no egress program", slot)
					}
				}
				pp.Close()
			})
		}
	}
}

// Each bpf2go struct matches its C struct member by member: same names in
// the same order, same offsets, same total size.
func TestPacketStructLayouts(t *testing.T) {
	spec, err := bpfobj.LoadPacket()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		cName string
		goVal any
	}{
		{"flag_counters", bpfobj.PacketFlagCounters{}},
		{"syn_tuple", bpfobj.PacketSynTuple{}},
		{"syn_source", bpfobj.PacketSynSource{}},
		{"syn_source_state", bpfobj.PacketSynSourceState{}},
		{"syn_cpu", bpfobj.PacketSynCpu{}},
		{"packet_config", bpfobj.PacketPacketConfig{}},
	} {
		var st *btf.Struct
		if err := spec.Types.TypeByName(c.cName, &st); err != nil {
			t.Errorf("struct %s in the packet object's BTF: %v", c.cName, err)
			continue
		}
		gt := reflect.TypeOf(c.goVal)
		if uintptr(st.Size) != gt.Size() {
			t.Errorf("struct %s: %d bytes in BTF, %s is %d", c.cName, st.Size, gt, gt.Size())
		}
		var goFields []reflect.StructField
		for i := 0; i < gt.NumField(); i++ {
			if f := gt.Field(i); f.Name != "_" {
				goFields = append(goFields, f)
			}
		}
		if len(goFields) != len(st.Members) {
			t.Errorf("struct %s: %d members in BTF, %d fields in %s", c.cName, len(st.Members), len(goFields), gt)
			continue
		}
		for i, m := range st.Members {
			f := goFields[i]
			size, err := btf.Sizeof(m.Type)
			if err != nil {
				t.Fatal(err)
			}
			if uintptr(m.Offset.Bytes()) != f.Offset || uintptr(size) != f.Type.Size() {
				t.Errorf("struct %s member %s at %d (%d bytes); %s.%s at %d (%d bytes)",
					c.cName, m.Name, m.Offset.Bytes(), size, gt, f.Name, f.Offset, f.Type.Size())
			}
		}
	}

	// The maps are keyed by these structs: their BTF key/value sizes must match too.
	for name, want := range map[string][2]uintptr{
		bpfobj.PacketMapCounters:   {4, reflect.TypeOf(bpfobj.PacketFlagCounters{}).Size()},
		bpfobj.PacketMapSynTuples:  {reflect.TypeOf(bpfobj.PacketSynTuple{}).Size(), 8},
		bpfobj.PacketMapSynSources: {reflect.TypeOf(bpfobj.PacketSynSource{}).Size(), reflect.TypeOf(bpfobj.PacketSynSourceState{}).Size()},
		bpfobj.PacketMapSynPercpu:  {4, reflect.TypeOf(bpfobj.PacketSynCpu{}).Size()},
		bpfobj.PacketMapDropPorts:  {4, 8},
	} {
		m := spec.Maps[name]
		if m != nil && m.InnerMap != nil {
			m = m.InnerMap // the tables, not the one-slot arrays that hold them
		}
		if m == nil {
			t.Errorf("map %s missing from the packet object", name)
			continue
		}
		if uintptr(m.KeySize) != want[0] || uintptr(m.ValueSize) != want[1] {
			t.Errorf("map %s: key %d value %d bytes, Go expects key %d value %d", name, m.KeySize, m.ValueSize, want[0], want[1])
		}
	}
}
