package probe

import (
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/tcplens/tcplens/internal/bpfobj"
	"github.com/tcplens/tcplens/internal/testutil"
)

// TestStatesRTTRecordLayouts checks that the Go record types bpf2go made
// are as large as the C structs in the objects' BTF.
func TestStatesRTTRecordLayouts(t *testing.T) {
	for _, c := range []struct {
		load   func() (*btf.Spec, error)
		name   string
		goSize uintptr
	}{
		{func() (*btf.Spec, error) { s, err := bpfobj.LoadStates(); return specTypes(s, err) }, "state_event", unsafe.Sizeof(StateEvent{})},
		{func() (*btf.Spec, error) { s, err := bpfobj.LoadRtt(); return specTypes(s, err) }, "rtt_event", unsafe.Sizeof(RTTEvent{})},
	} {
		spec, err := c.load()
		if err != nil {
			t.Fatal(err)
		}
		var st *btf.Struct
		if err := spec.TypeByName(c.name, &st); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if uintptr(st.Size) != c.goSize {
			t.Errorf("%s: C size %d, Go size %d", c.name, st.Size, c.goSize)
		}
	}
}

// TestStatesRTTLoadAndAttach loads both objects with filters set, so the
// verifier accepts every configuration, and attaches them.
func TestStatesRTTLoadAndAttach(t *testing.T) {
	testutil.RequirePrivileged(t)
	for _, f := range sockFilterShapes() {
		st, err := LoadStates(SockTracerOptions{Filter: f})
		if err != nil {
			t.Fatalf("states with %+v: %v", f, err)
		}
		st.Close()
		rt, err := LoadRTT(SockTracerOptions{Filter: f}, RTTConfig{Sample: 10 * time.Millisecond, CwndChangePct: 10})
		if err != nil {
			t.Fatalf("rtt with %+v: %v", f, err)
		}
		rt.Close()
	}
}

func specTypes(s *ebpf.CollectionSpec, err error) (*btf.Spec, error) {
	if err != nil {
		return nil, err
	}
	return s.Types, nil
}
