package probe

import (
	"net/netip"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/tcplens/tcplens/internal/bpfobj"
	"github.com/tcplens/tcplens/internal/testutil"
)

// TestSockFilterLayout checks that kernelSockFilter and struct
// sock_filter_cfg agree, member by member, in every socket-path object.
func TestSockFilterLayout(t *testing.T) {
	want := map[string]uint32{ // C member -> Go offset
		"ports":      uint32(unsafe.Offsetof(kernelSockFilter{}.Ports)),
		"lports":     uint32(unsafe.Offsetof(kernelSockFilter{}.LPorts)),
		"rports":     uint32(unsafe.Offsetof(kernelSockFilter{}.RPorts)),
		"n_ports":    uint32(unsafe.Offsetof(kernelSockFilter{}.NPorts)),
		"n_lports":   uint32(unsafe.Offsetof(kernelSockFilter{}.NLPorts)),
		"n_rports":   uint32(unsafe.Offsetof(kernelSockFilter{}.NRPorts)),
		"n_prefixes": uint32(unsafe.Offsetof(kernelSockFilter{}.NPrefix)),
		"family":     uint32(unsafe.Offsetof(kernelSockFilter{}.Family)),
		"prefixes":   uint32(unsafe.Offsetof(kernelSockFilter{}.Prefixes)),
	}
	wantPrefix := map[string]uint32{
		"addr":   uint32(unsafe.Offsetof(kernelPrefix{}.Addr)),
		"mask":   uint32(unsafe.Offsetof(kernelPrefix{}.Mask)),
		"family": uint32(unsafe.Offsetof(kernelPrefix{}.Family)),
	}
	for name, load := range map[string]func() (*ebpf.CollectionSpec, error){
		"states": bpfobj.LoadStates, "rtt": bpfobj.LoadRtt, "retrans": bpfobj.LoadRetrans,
		"resets": bpfobj.LoadResets, "drops": bpfobj.LoadDrops,
	} {
		spec, err := load()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		checkStruct(t, name, spec.Types, "sock_filter_cfg", unsafe.Sizeof(kernelSockFilter{}), want)
		checkStruct(t, name, spec.Types, "filter_prefix", unsafe.Sizeof(kernelPrefix{}), wantPrefix)
	}
}

func checkStruct(t *testing.T, obj string, types *btf.Spec, name string, size uintptr, offsets map[string]uint32) {
	t.Helper()
	var st *btf.Struct
	if err := types.TypeByName(name, &st); err != nil {
		t.Fatalf("%s: %s: %v", obj, name, err)
	}
	if uintptr(st.Size) != size {
		t.Errorf("%s: struct %s is %d bytes in C, %d in Go", obj, name, st.Size, size)
	}
	seen := 0
	for _, m := range st.Members {
		off, ok := offsets[m.Name]
		if !ok {
			continue
		}
		seen++
		if m.Offset.Bytes() != off {
			t.Errorf("%s: %s.%s at %d in C, %d in Go", obj, name, m.Name, m.Offset.Bytes(), off)
		}
	}
	if seen != len(offsets) {
		t.Errorf("%s: struct %s has %d of the %d members Go expects", obj, name, seen, len(offsets))
	}
}

func TestKernelFilterMasksAndLimits(t *testing.T) {
	k, err := kernelFilter(SockFilter{Hosts: []netip.Prefix{
		netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("fd00::/12"), netip.MustParsePrefix("192.0.2.7/32"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []struct {
		family     uint8
		addr, mask string
	}{
		{4, "0a010000000000000000000000000000", "ffff0000000000000000000000000000"},
		{6, "fd000000000000000000000000000000", "fff00000000000000000000000000000"},
		{4, "c0000207000000000000000000000000", "ffffffff000000000000000000000000"},
	} {
		p := k.Prefixes[i]
		if p.Family != want.family || hexOf(p.Addr[:]) != want.addr || hexOf(p.Mask[:]) != want.mask {
			t.Errorf("prefix %d: family %d addr %x mask %x, want %+v", i, p.Family, p.Addr, p.Mask, want)
		}
	}
	if k.NPrefix != 3 {
		t.Errorf("n_prefixes %d, want 3", k.NPrefix)
	}
	nine := make([]uint16, MaxFilterPorts+1)
	for _, f := range []SockFilter{{Ports: nine}, {LPorts: nine}, {RPorts: nine}, {Hosts: make([]netip.Prefix, MaxFilterPrefixes+1)}} {
		if err := f.Check(); err == nil || !strings.Contains(err.Error(), "at most 8") {
			t.Errorf("%+v: error %v, want one saying at most 8", f, err)
		}
	}
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	s := make([]byte, 0, 2*len(b))
	for _, c := range b {
		s = append(s, digits[c>>4], digits[c&15])
	}
	return string(s)
}

func TestParseHostUnmaps(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.1":            "10.0.0.1/32",
		"::ffff:10.0.0.1":     "10.0.0.1/32",
		"::ffff:10.0.0.0/104": "10.0.0.0/8",
		"10.9.8.7/8":          "10.0.0.0/8",
		"fd00::1/8":           "fd00::/8",
	} {
		p, err := ParseHost(in)
		if err != nil || p.String() != want {
			t.Errorf("ParseHost(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
}

// sockFilterShapes are filters of every kind, from none to full lists, so
// that load tests show the verifier accepts each shape.
func sockFilterShapes() []SockFilter {
	full := make([]uint16, MaxFilterPorts)
	for i := range full {
		full[i] = uint16(1000 + i)
	}
	var hosts []netip.Prefix
	for i := 0; i < MaxFilterPrefixes/2; i++ {
		hosts = append(hosts, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 0}), 16),
			netip.PrefixFrom(netip.AddrFrom16([16]byte{0xfd, byte(i)}), 16))
	}
	return []SockFilter{
		{},
		{Ports: []uint16{443}, Family: 6, Hosts: []netip.Prefix{netip.MustParsePrefix("fd00::/8")}},
		{Family: 4, Hosts: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
		{Ports: full, LPorts: full, RPorts: full, Hosts: hosts},
	}
}

// TestSockFilterShapesLoad loads every socket-path object with every
// filter shape: the verifier must accept them all.
func TestSockFilterShapesLoad(t *testing.T) {
	testutil.RequirePrivileged(t)
	reasons, err := DropReasons()
	if err != nil {
		t.Fatal(err)
	}
	loaders := map[string]func(SockTracerOptions) (*SockTracer, error){
		"states":  LoadStates,
		"retrans": LoadRetrans,
		"resets":  LoadResets,
		"rtt": func(o SockTracerOptions) (*SockTracer, error) {
			return LoadRTT(o, RTTConfig{Sample: 10 * time.Millisecond})
		},
		"drops": func(o SockTracerOptions) (*SockTracer, error) {
			d, err := LoadDrops(o, DropsConfig{}, reasons)
			if err != nil {
				return nil, err
			}
			return d.SockTracer, nil
		},
	}
	for name, load := range loaders {
		for _, f := range sockFilterShapes() {
			tr, err := load(SockTracerOptions{Filter: f})
			if err != nil {
				t.Errorf("%s with %+v: %v", name, f, err)
				continue
			}
			tr.Close()
		}
	}
}
