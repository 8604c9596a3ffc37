package probe

import (
	"errors"
	"os"
	"testing"

	"github.com/cilium/ebpf/btf"

	"github.com/tcplens/tcplens/internal/testutil"
)

func enumSpec(t *testing.T) *btf.Spec {
	t.Helper()
	b, err := btf.NewBuilder([]btf.Type{&btf.Enum{Name: "skb_drop_reason", Size: 4, Values: []btf.EnumValue{
		{Name: "SKB_NOT_DROPPED_YET", Value: 0},
		{Name: "SKB_CONSUMED", Value: 1},
		{Name: "SKB_DROP_REASON_NOT_SPECIFIED", Value: 2},
		{Name: "SKB_DROP_REASON_NO_SOCKET", Value: 3},
		{Name: "SKB_DROP_REASON_ALIAS_OF_NO_SOCKET", Value: 3},
	}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := b.Spec()
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

func TestEnumNamesFromBTF(t *testing.T) {
	e, err := NewEnumNames(enumSpec(t), "skb_drop_reason", DropReasonPrefix)
	if err != nil {
		t.Fatal(err)
	}
	for v, want := range map[uint64]string{0: "SKB_NOT_DROPPED_YET", 1: "SKB_CONSUMED", 2: "NOT_SPECIFIED", 3: "NO_SOCKET", 99: ""} {
		if got := e.Name(v); got != want {
			t.Errorf("Name(%d) = %q, want %q", v, got, want)
		}
	}
	if v, ok := e.Value("SKB_CONSUMED"); !ok || v != 1 {
		t.Errorf("Value(SKB_CONSUMED) = %d, %v", v, ok)
	}
	for _, name := range []string{"NO_SOCKET", "no_socket", "SKB_DROP_REASON_NO_SOCKET"} {
		if v, err := LookupDropReason(e, name); err != nil || v != 3 {
			t.Errorf("LookupDropReason(%q) = %d, %v", name, v, err)
		}
	}
	if _, err := LookupDropReason(e, "BOGUS"); err == nil {
		t.Errorf("LookupDropReason(BOGUS) found something")
	}
	if _, err := NewEnumNames(enumSpec(t), "sk_rst_reason", ResetReasonPrefix); err == nil {
		t.Errorf("found an enum the spec does not have")
	}
}

// TestKernelEnumNames reads this kernel's reasons; kernel BTF is readable
// without privileges, but not every kernel has it. Only its absence skips;
// any other failure to read it is a failure.
func TestKernelEnumNames(t *testing.T) {
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); errors.Is(err, os.ErrNotExist) {
		testutil.SkipUnlessRequired(t, "no kernel BTF (/sys/kernel/btf/vmlinux)")
	}
	drops, err := DropReasons()
	if err != nil {
		t.Fatal(err)
	}
	if v, err := LookupDropReason(drops, "NO_SOCKET"); err != nil || drops.Name(uint64(v)) != "NO_SOCKET" {
		t.Errorf("NO_SOCKET: %d, %v", v, err)
	}
	resets, err := ResetReasons()
	if errors.Is(err, ErrUnsupported) {
		// enum sk_rst_reason came with 6.10; older kernels report no reason.
		t.Logf("no reset reasons on this kernel: %v", err)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := resets.Value("SK_RST_REASON_NO_SOCKET"); !ok || resets.Name(v) != "NO_SOCKET" {
		t.Errorf("SK_RST_REASON_NO_SOCKET: %d, %v", v, ok)
	}
}
