package probe

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/cilium/ebpf/btf"
)

// EnumNames maps an enum's values to its constants' names, as this
// kernel's BTF declares them: reasons the kernel gives (sk_rst_reason,
// skb_drop_reason) are named by the running kernel, never by a table
// compiled into tcplens that would go stale. The prefix is stripped from
// each name where present, so names read as the kernel's tracepoints print
// them ("NO_SOCKET", not "SKB_DROP_REASON_NO_SOCKET").
type EnumNames struct {
	names  map[uint64]string
	values map[string]uint64 // full, unstripped names
}

// Name is the value's name, or "" when the enum has no such value.
func (e *EnumNames) Name(v uint64) string { return e.names[v] }

// Value finds a constant by its full name, such as "SKB_CONSUMED".
func (e *EnumNames) Value(full string) (uint64, bool) {
	v, ok := e.values[full]
	return v, ok
}

// Len is the number of constants.
func (e *EnumNames) Len() int { return len(e.values) }

// NewEnumNames reads the enum from a BTF spec.
func NewEnumNames(spec *btf.Spec, enumName, prefix string) (*EnumNames, error) {
	var enum *btf.Enum
	if err := spec.TypeByName(enumName, &enum); err != nil {
		if errors.Is(err, btf.ErrNotFound) {
			return nil, fmt.Errorf("kernel BTF has no enum %s: %w", enumName, ErrUnsupported)
		}
		return nil, fmt.Errorf("find enum %s in BTF: %w", enumName, err)
	}
	e := &EnumNames{names: make(map[uint64]string, len(enum.Values)), values: make(map[string]uint64, len(enum.Values))}
	for _, v := range enum.Values {
		e.values[v.Name] = v.Value
		if _, dup := e.names[v.Value]; !dup { // the first name of an alias wins
			e.names[v.Value] = strings.TrimPrefix(v.Name, prefix)
		}
	}
	return e, nil
}

var kernelBTF struct {
	once sync.Once
	spec *btf.Spec
	err  error
}

// KernelEnumNames reads the enum from the running kernel's BTF.
func KernelEnumNames(enumName, prefix string) (*EnumNames, error) {
	kernelBTF.once.Do(func() {
		kernelBTF.spec, kernelBTF.err = btf.LoadKernelSpec()
	})
	if kernelBTF.err != nil {
		return nil, fmt.Errorf("load kernel BTF to name %s values: %v (needs CONFIG_DEBUG_INFO_BTF=y): %w",
			enumName, kernelBTF.err, ErrUnsupported)
	}
	return NewEnumNames(kernelBTF.spec, enumName, prefix)
}
