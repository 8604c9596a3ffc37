package probe

import (
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
// its BTF.
func DropReasons() (*EnumNames, error) {
	return KernelEnumNames("skb_drop_reason", DropReasonPrefix)
}

// LookupDropReason finds a reason by name, with or without the
// SKB_DROP_REASON_ prefix, in any case.
func LookupDropReason(reasons *EnumNames, name string) (uint32, error) {
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
}

// LoadDrops loads bpf/drops.c and attaches it to skb:kfree_skb.
func LoadDrops(opts SockTracerOptions, cfg DropsConfig, reasons *EnumNames) (*SockTracer, error) {
	spec, err := bpfobj.LoadDrops()
	if err != nil {
		return nil, fmt.Errorf("read embedded drops object: %w", err)
	}
	skip := cfg.SkipReasons
	if v, ok := reasons.Value("SKB_CONSUMED"); ok {
		skip = append(skip[:len(skip):len(skip)], uint32(v))
	}
	var kcfg bpfobj.DropsDropsCfg
	for _, r := range skip {
		if r >= maxSkippableReason {
			return nil, fmt.Errorf("drop reason %d: only reasons below %d can be skipped", r, maxSkippableReason)
		}
		kcfg.SkipReasons[r/64] |= 1 << (r % 64)
	}
	configure := func(spec *ebpf.CollectionSpec) error {
		if err := spec.Variables[bpfobj.DropsVarDropFilter].Set(kcfg); err != nil {
			return fmt.Errorf("set skipped drop reasons: %w", err)
		}
		return nil
	}
	return loadSockTracer("drops", spec, opts, configure, []tracepointProgram{
		{bpfobj.DropsProgKfreeSkb, TPKfreeSKB},
	})
}
