package probe

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cilium/ebpf"

	"github.com/tcplens/tcplens/internal/bpfobj"
)

// DropReasonPrefix is stripped from enum skb_drop_reason's names: reasons
// read as the kfree_skb tracepoint prints them ("NO_SOCKET" for
// SKB_DROP_REASON_NO_SOCKET). The two values that are not drops keep their
// names (SKB_CONSUMED, SKB_NOT_DROPPED_YET).
const DropReasonPrefix = "SKB_DROP_REASON_"

// maxSkippableReason bounds the reasons bpf/drops.c can skip (its bitmap).
const maxSkippableReason = 256

// DropReasons names the kernel's drop reasons (enum skb_drop_reason) from
// its BTF. Kernels before 5.17 have no drop reasons: then it returns nil
// and no error, and drops are reported without a reason.
func DropReasons() (*EnumNames, error) {
	e, err := KernelEnumNames("skb_drop_reason", DropReasonPrefix)
	if err != nil && errors.Is(err, ErrUnsupported) && kernelBTF.err == nil {
		return nil, nil // BTF is there, the enum is not: an older kernel
	}
	return e, err
}

// LookupDropReason finds a reason by name, with or without the
// SKB_DROP_REASON_ prefix, in any case.
func LookupDropReason(reasons *EnumNames, name string) (uint32, error) {
	if reasons == nil {
		return 0, fmt.Errorf("this kernel gives no drop reasons (enum skb_drop_reason is new in 5.17)")
	}
	up := strings.ToUpper(name)
	for _, full := range []string{up, DropReasonPrefix + up} {
		if v, ok := reasons.Value(full); ok {
			return uint32(v), nil
		}
	}
	return 0, fmt.Errorf("this kernel has no drop reason %q (see enum skb_drop_reason)", name)
}

// DropsConfig is what bpf/drops.c needs besides the socket filter.
type DropsConfig struct {
	// SkipReasons are not reported; SKB_CONSUMED (not a drop) is always
	// skipped.
	SkipReasons []uint32
	// Stack records each drop's kernel stack in the `stacks` map.
	Stack bool
}

// stackMapEntries is the number of distinct stacks --stack keeps (bpf/drops.c).
const stackMapEntries = 1024

// Drops is bpf/drops.c loaded and attached, with its stack map.
type Drops struct {
	*SockTracer
	// Stacks holds kernel stacks by the id in each record (--stack);
	// StackLost counts drops whose stack could not be stored, per CPU.
	Stacks, StackLost *ebpf.Map
}

// StacksLost sums the drops whose stack was not recorded (--stack).
func (d *Drops) StacksLost() (uint64, error) {
	var perCPU []uint64
	if err := d.StackLost.Lookup(uint32(0), &perCPU); err != nil {
		return 0, fmt.Errorf("read drops' stack_lost counter: %w", err)
	}
	var n uint64
	for _, v := range perCPU {
		n += v
	}
	return n, nil
}

// Stack reads the kernel return addresses of a stack id, innermost first,
// appending to buf.
func (d *Drops) Stack(id int32, buf []uint64) ([]uint64, error) {
	var frames [stackDepth]uint64
	if err := d.Stacks.Lookup(uint32(id), &frames); err != nil {
		return buf, fmt.Errorf("read stack %d: %w", id, err)
	}
	for _, pc := range frames {
		if pc == 0 {
			break
		}
		buf = append(buf, pc)
	}
	return buf, nil
}

// LoadDrops loads bpf/drops.c and attaches it to skb:kfree_skb.
// reasons is nil on kernels without drop reasons.
func LoadDrops(opts SockTracerOptions, cfg DropsConfig, reasons *EnumNames) (*Drops, error) {
	spec, err := DropsObject.Spec()
	if err != nil {
		return nil, err
	}
	skip := cfg.SkipReasons
	if reasons != nil {
		if v, ok := reasons.Value("SKB_CONSUMED"); ok {
			skip = append(skip[:len(skip):len(skip)], uint32(v))
		}
	}
	var kcfg bpfobj.DropsDropsCfg
	for _, r := range skip {
		if r >= maxSkippableReason {
			return nil, fmt.Errorf("drop reason %d: only reasons below %d can be skipped", r, maxSkippableReason)
		}
		kcfg.SkipReasons[r/64] |= 1 << (r % 64)
	}
	if cfg.Stack {
		kcfg.Stack = 1
	}
	stacks := spec.Maps[bpfobj.DropsMapStacks]
	if stacks == nil || stacks.ValueSize != stackDepth*8 {
		return nil, fmt.Errorf("drops object: no stacks map of %d frames", stackDepth)
	}
	if !cfg.Stack {
		stacks.MaxEntries = 1 // unused: do not hold a megabyte of kernel memory
	} else {
		stacks.MaxEntries = stackMapEntries
	}
	configure := func(spec *ebpf.CollectionSpec) error {
		if err := spec.Variables[bpfobj.DropsVarDropFilter].Set(kcfg); err != nil {
			return fmt.Errorf("set skipped drop reasons: %w", err)
		}
		return nil
	}
	st, err := DropsObject.loadSpec(spec, opts, configure)
	if err != nil {
		return nil, err
	}
	return &Drops{SockTracer: st, Stacks: st.coll.Maps[bpfobj.DropsMapStacks], StackLost: st.coll.Maps[bpfobj.DropsMapStackLost]}, nil
}

// stackDepth is STACK_DEPTH of bpf/drops.c: frames kept per stack.
const stackDepth = 64
