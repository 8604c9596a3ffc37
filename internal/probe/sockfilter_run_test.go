package probe

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/tcplens/tcplens/internal/bpfobj"
	"github.com/tcplens/tcplens/internal/testutil"
)

// The filter in the kernel (filter_match in bpf/sock_common.h), run through
// BPF_PROG_TEST_RUN by bpf/sockfilter_probe.c on addresses the test
// chooses. The oracle is wantMatch below: the filter's meaning written
// with net/netip, sharing no code with the C or with kernelFilter.

// sockAddrsBytes lays out a struct sock_addrs (40 bytes).
func sockAddrsBytes(family uint8, s, d [16]byte, sport, dport uint16) []byte {
	b := make([]byte, 40)
	copy(b[0:16], s[:])
	copy(b[16:32], d[:])
	binary.LittleEndian.PutUint16(b[32:], sport)
	binary.LittleEndian.PutUint16(b[34:], dport)
	b[36] = family
	return b
}

// wireBytes is how the BPF side stores an address: IPv4 in the first 4.
func wireBytes(a netip.Addr) (family uint8, b [16]byte) {
	if a.Is4() {
		v := a.As4()
		copy(b[:], v[:])
		return 4, b
	}
	return 6, a.As16()
}

// asIPv4 says how the filter must see a socket's pair of addresses: an
// IPv4 peer of a dual-stack socket (::ffff:a.b.c.d, the other end the
// same kind or ::) is IPv4.
func asIPv4(s, d netip.Addr) (netip.Addr, netip.Addr, bool) {
	if !s.Is6() || !(s.Is4In6() || d.Is4In6()) {
		return s, d, false
	}
	un := func(a netip.Addr) (netip.Addr, bool) {
		if a.Is4In6() {
			return a.Unmap(), true
		}
		if a == netip.IPv6Unspecified() {
			return netip.IPv4Unspecified(), true
		}
		return a, false
	}
	s4, ok1 := un(s)
	d4, ok2 := un(d)
	if !ok1 || !ok2 {
		return s, d, false
	}
	return s4, d4, true
}

func wantMatch(f SockFilter, s, d netip.Addr, sport, dport uint16) bool {
	s, d, _ = asIPv4(s, d)
	has := func(l []uint16, p uint16) bool {
		for _, x := range l {
			if x == p {
				return true
			}
		}
		return false
	}
	if f.Family == 4 && !s.Is4() || f.Family == 6 && s.Is4() {
		return false
	}
	if len(f.Ports) > 0 && !has(f.Ports, sport) && !has(f.Ports, dport) {
		return false
	}
	if len(f.LPorts) > 0 && !has(f.LPorts, sport) {
		return false
	}
	if len(f.RPorts) > 0 && !has(f.RPorts, dport) {
		return false
	}
	if len(f.Hosts) > 0 {
		in := false
		for _, p := range f.Hosts {
			in = in || p.Contains(s) || p.Contains(d)
		}
		if !in {
			return false
		}
	}
	return true
}

func loadFilterProbe(t testing.TB, f SockFilter) (*ebpf.Collection, *ebpf.Program) {
	t.Helper()
	spec, err := bpfobj.LoadSockfilterProbe()
	if err != nil {
		t.Fatal(err)
	}
	if err := ApplySockFilter(spec, f); err != nil {
		t.Fatal(err)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		t.Fatalf("load filter probe with %+v: %v", f, err)
	}
	t.Cleanup(func() { coll.Close() })
	return coll, coll.Programs["filter_probe"]
}

// Addresses and ports the random cases draw from: some inside the random
// filters' prefixes, v4-mapped ones, and :: (an end not bound yet).
var (
	filterTestAddrs = []string{"10.0.0.1", "10.0.1.7", "10.9.0.1", "192.0.2.1", "192.0.2.200", "0.0.0.0",
		"fd00::1", "fd00:1::5", "fe80::1", "2001:db8::1", "::1", "::"}
	filterTestMapped = []string{"::ffff:10.0.0.1", "::ffff:10.0.1.7", "::ffff:192.0.2.1", "::ffff:192.0.2.200", "::"}
	filterTestPrefix = []string{"10.0.0.0/8", "10.0.1.0/24", "192.0.2.1/32", "192.0.2.128/25", "fd00::/16",
		"fd00:1::/32", "::1/128", "2001:db8::/32", "0.0.0.0/0", "::/0"}
	filterTestPorts = []uint16{22, 80, 443, 8080, 40000, 40001}
)

func randomFilter(r *rand.Rand) SockFilter {
	var f SockFilter
	pick := func() []uint16 {
		var l []uint16
		for i, n := 0, r.IntN(4); i < n; i++ {
			l = append(l, filterTestPorts[r.IntN(len(filterTestPorts))])
		}
		return l
	}
	f.Ports, f.LPorts, f.RPorts = pick(), pick(), pick()
	for i, n := 0, r.IntN(4); i < n; i++ {
		f.Hosts = append(f.Hosts, netip.MustParsePrefix(filterTestPrefix[r.IntN(len(filterTestPrefix))]))
	}
	f.Family = []uint8{0, 0, 4, 6}[r.IntN(4)]
	return f
}

// TestSockFilterInKernel runs random filters on random connections in the
// kernel and compares each verdict, and the addresses filter_match leaves
// (v4-mapped made IPv4), with the oracle.
func TestSockFilterInKernel(t *testing.T) {
	testutil.RequirePrivileged(t)
	r := rand.New(rand.NewPCG(1, 2))
	const filters, conns = 40, 60
	mismatches := 0
	for i := 0; i < filters; i++ {
		f := randomFilter(r)
		_, prog := loadFilterProbe(t, f)
		for j := 0; j < conns; j++ {
			var s, d netip.Addr
			if r.IntN(3) == 0 { // a dual-stack socket's IPv4 peer
				s = netip.MustParseAddr(filterTestMapped[r.IntN(len(filterTestMapped))])
				d = netip.MustParseAddr(filterTestMapped[r.IntN(len(filterTestMapped)-1)])
			} else {
				s = netip.MustParseAddr(filterTestAddrs[r.IntN(len(filterTestAddrs))])
				for {
					d = netip.MustParseAddr(filterTestAddrs[r.IntN(len(filterTestAddrs))])
					if d.Is4() == s.Is4() {
						break
					}
				}
			}
			sport, dport := filterTestPorts[r.IntN(len(filterTestPorts))], filterTestPorts[r.IntN(len(filterTestPorts))]
			fam, sb := wireBytes(s)
			_, db := wireBytes(d)
			in := sockAddrsBytes(fam, sb, db, sport, dport)
			out := make([]byte, len(in))
			ret, err := prog.Run(&ebpf.RunOptions{Data: in, DataOut: out})
			if err != nil {
				t.Fatal(err)
			}
			want := wantMatch(f, s, d, sport, dport)
			if got := ret == 2; got != want { // XDP_PASS
				if mismatches++; mismatches <= 10 {
					t.Errorf("filter %+v on %s:%d -> %s:%d: kernel says %v, want %v", f, s, sport, d, dport, got, want)
				}
			}
			ws, wd, _ := asIPv4(s, d)
			wfam, wsb := wireBytes(ws)
			_, wdb := wireBytes(wd)
			if wantOut := sockAddrsBytes(wfam, wsb, wdb, sport, dport); string(out) != string(wantOut) {
				t.Errorf("%s -> %s: addresses left as %x, want %x", s, d, out, wantOut)
			}
		}
	}
	t.Logf("%d filters x %d connections, %d mismatches", filters, conns, mismatches)
}

// BenchmarkSockFilter measures filter_match alone per call, against the
// same program without it (the baseline copies the addresses in and
// out), in one run: no filter, one port, and full lists (8 ports, 8
// remote ports, 8 prefixes) matching at their last entries, so every
// entry is compared; the addresses are a dual-stack socket's, so the
// unmapping runs too.
func BenchmarkSockFilter(b *testing.B) {
	testutil.RequirePrivileged(b)
	full := SockFilter{}
	for i := uint16(1); i < MaxFilterPorts; i++ {
		full.Ports = append(full.Ports, i)
		full.RPorts = append(full.RPorts, i)
	}
	full.Ports = append(full.Ports, 443)
	full.RPorts = append(full.RPorts, 443)
	for i := 1; i < MaxFilterPrefixes; i++ {
		full.Hosts = append(full.Hosts, netip.PrefixFrom(netip.AddrFrom16([16]byte{0xfd, byte(i)}), 32))
	}
	full.Hosts = append(full.Hosts, netip.MustParsePrefix("10.0.0.0/8"))
	_, sb := wireBytes(netip.MustParseAddr("::ffff:192.0.2.1"))
	_, db := wireBytes(netip.MustParseAddr("::ffff:10.0.0.1"))
	in := sockAddrsBytes(6, sb, db, 40000, 443)
	for _, shape := range []struct {
		name string
		f    SockFilter
	}{{"none", SockFilter{}}, {"port", SockFilter{Ports: []uint16{443}}}, {"full", full}} {
		b.Run(shape.name, func(b *testing.B) {
			coll, prog := loadFilterProbe(b, shape.f)
			base := coll.Programs["filter_probe_baseline"]
			if ret, _, err := prog.Test(in); err != nil || ret != 2 {
				b.Fatalf("filter probe: %d, %v; want a match", ret, err)
			}
			const chunk = 100000
			var baseNs, filterNs float64
			b.ResetTimer()
			for done := 0; done < b.N; {
				n := min(chunk, b.N-done)
				_, db, err := base.Benchmark(in, n, nil)
				if err != nil {
					b.Fatal(err)
				}
				_, df, err := prog.Benchmark(in, n, nil)
				if err != nil {
					b.Fatal(err)
				}
				baseNs += float64(db/time.Nanosecond) * float64(n)
				filterNs += float64(df/time.Nanosecond) * float64(n)
				done += n
			}
			b.StopTimer()
			b.ReportMetric(filterNs/float64(b.N), "ns/call")
			b.ReportMetric((filterNs-baseNs)/float64(b.N), "filter-ns/call")
			info, err := prog.Info()
			if err == nil {
				if insns, err := info.Instructions(); err == nil {
					b.ReportMetric(float64(len(insns)), "insns")
				}
			}
		})
	}
}
