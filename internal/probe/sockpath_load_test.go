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
// are as large as the C structs in the objects' BTF, for every socket-path
// object.
func TestStatesRTTRecordLayouts(t *testing.T) {
	for _, c := range []struct {
		load   func() (*btf.Spec, error)
		name   string
		goSize uintptr
	}{
		{func() (*btf.Spec, error) { s, err := bpfobj.LoadStates(); return specTypes(s, err) }, "state_event", unsafe.Sizeof(StateEvent{})},
		{func() (*btf.Spec, error) { s, err := bpfobj.LoadRtt(); return specTypes(s, err) }, "rtt_event", unsafe.Sizeof(RTTEvent{})},
		{func() (*btf.Spec, error) { s, err := bpfobj.LoadRetrans(); return specTypes(s, err) }, "retrans_event", unsafe.Sizeof(RetransEvent{})},
		{func() (*btf.Spec, error) { s, err := bpfobj.LoadResets(); return specTypes(s, err) }, "reset_event", unsafe.Sizeof(bpfobj.ResetsResetEvent{})},
		{func() (*btf.Spec, error) { s, err := bpfobj.LoadDrops(); return specTypes(s, err) }, "drop_event", unsafe.Sizeof(bpfobj.DropsDropEvent{})},
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

// TestRetransResetsDropsLoadAndAttach loads the tracepoint commands'
// objects with every filter shape, so the verifier accepts each, and
// checks that every program is attached (one link each) and the ring
// buffer and loss counters exist. TestDropsLoadVariants covers drops'
// own options.
func TestRetransResetsDropsLoadAndAttach(t *testing.T) {
	testutil.RequirePrivileged(t)
	reasons, err := DropReasons()
	if err != nil {
		t.Fatalf("drop reasons from kernel BTF: %v", err)
	}
	loaders := []struct {
		name  string
		progs int
		load  func(SockTracerOptions) (*SockTracer, error)
	}{
		{"retrans", 3, LoadRetrans}, // + the per-socket baseline on inet_sock_set_state
		{"resets", 2, LoadResets},
		{"drops", 1, func(o SockTracerOptions) (*SockTracer, error) {
			d, err := LoadDrops(o, DropsConfig{}, reasons)
			if err != nil {
				return nil, err
			}
			return d.SockTracer, nil
		}},
	}
	for _, l := range loaders {
		for _, f := range sockFilterShapes() {
			tr, err := l.load(SockTracerOptions{Filter: f})
			if err != nil {
				t.Fatalf("%s with %+v: %v", l.name, f, err)
			}
			if len(tr.Programs) < l.progs || len(tr.links) != l.progs {
				t.Errorf("%s: %d programs loaded, %d attached, want %d attached", l.name, len(tr.Programs), len(tr.links), l.progs)
			}
			if tr.Events == nil || tr.Lost == nil {
				t.Errorf("%s: ring buffer or loss counters missing", l.name)
			}
			if err := tr.Close(); err != nil {
				t.Errorf("%s: close: %v", l.name, err)
			}
		}
	}
}
