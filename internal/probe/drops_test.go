package probe

import (
	"testing"
	"unsafe"

	"github.com/cilium/ebpf/btf"

	"github.com/tcplens/tcplens/internal/bpfobj"
	"github.com/tcplens/tcplens/internal/testutil"
)

// TestDropEventLayout checks that bpf2go's Go record is as large as the C
// struct in the object's BTF.
func TestDropEventLayout(t *testing.T) {
	spec, err := bpfobj.LoadDrops()
	if err != nil {
		t.Fatal(err)
	}
	var st *btf.Struct
	if err := spec.Types.TypeByName("drop_event", &st); err != nil {
		t.Fatal(err)
	}
	if got := uintptr(st.Size); got != unsafe.Sizeof(bpfobj.DropsDropEvent{}) {
		t.Errorf("drop_event: C size %d, Go size %d", got, unsafe.Sizeof(bpfobj.DropsDropEvent{}))
	}
	if vs := spec.Maps[bpfobj.DropsMapStacks].ValueSize; vs != stackDepth*8 {
		t.Errorf("stacks map holds %d bytes a stack, Go reads %d", vs, stackDepth*8)
	}
}

// TestDropsLoadVariants loads drops with and without --stack and with
// skipped reasons, so the verifier of this kernel accepts each, and reads
// the stack-loss counter.
func TestDropsLoadVariants(t *testing.T) {
	testutil.RequirePrivileged(t)
	reasons, err := DropReasons()
	if err != nil {
		t.Fatal(err)
	}
	var skip []uint32
	if reasons != nil {
		v, err := LookupDropReason(reasons, "NOT_SPECIFIED")
		if err != nil {
			t.Fatal(err)
		}
		skip = []uint32{v}
	}
	for _, cfg := range []DropsConfig{{}, {Stack: true}, {Stack: true, SkipReasons: skip}} {
		d, err := LoadDrops(SockTracerOptions{}, cfg, reasons)
		if err != nil {
			t.Fatalf("%+v: %v", cfg, err)
		}
		if n, err := d.StacksLost(); err != nil || n != 0 {
			t.Errorf("%+v: stacks lost %d, %v", cfg, n, err)
		}
		if want := uint32(1); !cfg.Stack && d.Stacks.MaxEntries() != want {
			t.Errorf("without --stack the stack map has %d entries", d.Stacks.MaxEntries())
		}
		d.Close()
	}
}
