package probe

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/tcplens/tcplens/internal/pfilter"
	"github.com/tcplens/tcplens/internal/testutil"
)

var processedInsns = regexp.MustCompile(`processed (\d+) insns`)

// The longest filter, with every stage a command can combine with it,
// stays far below the verifier's limit of 1,000,000 processed
// instructions on this kernel: older verifiers (6.1) prune less, so a
// budget of a quarter leaves them room. Before the filter's tests went
// branchless and the capture stage became a global function, a
// 29-instruction filter with every stage did not load on XDP (E2BIG), and
// one with capture alone took 584,000. Stages no command combines are not
// loaded together here: SYN tracking, signatures and the SYN port drop
// together with capture did not load on 6.1 (E2BIG), and nothing asks
// for that.
func TestPacketPathVerifierBudget(t *testing.T) {
	testutil.RequirePrivileged(t)
	const budget = 250_000
	expr := strings.Repeat("host 10.0.0.1 or net fd00::/16 or portrange 1-1000 or ", 5) + "src and dst net 192.168.0.0/16"
	prog, err := pfilter.Parse(expr)
	if err != nil {
		t.Fatal(err)
	}
	prog = append(prog, pfilter.Insn{Op: pfilter.OpNot})
	if len(prog) != pfilter.MaxInsns {
		t.Fatalf("the filter has %d instructions, want the most (%d)", len(prog), pfilter.MaxInsns)
	}
	// What cli's flags, syn and capture ask for at most.
	for name, cfg := range map[string]PacketConfig{
		"flags":   {Filter: prog, DropSYNPorts: []uint16{22}},
		"syn":     {Filter: prog, TrackSYN: true, SYNSignatures: true, DropSYNPorts: []uint16{22}},
		"capture": {Filter: prog, Capture: &CaptureConfig{Snaplen: SnapHeaders}},
	} {
		t.Run(name, func(t *testing.T) {
			spec, err := LoadPacketSpec(cfg, 0)
			if err != nil {
				t.Fatal(err)
			}
			coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{Programs: ebpf.ProgramOptions{LogLevel: ebpf.LogLevelStats}})
			if err != nil {
				t.Fatalf("load with the longest filter: %+v", err)
			}
			defer coll.Close()
			for name, p := range coll.Programs {
				m := processedInsns.FindStringSubmatch(p.VerifierLog)
				if m == nil {
					t.Fatalf("%s: no instruction count in the verifier log: %q", name, p.VerifierLog)
				}
				n, _ := strconv.Atoi(m[1])
				t.Logf("%s: the verifier processed %d instructions", name, n)
				if n > budget {
					t.Errorf("%s: the verifier processed %d instructions, over the budget of %d", name, n, budget)
				}
			}
		})
	}
}

// The XDP program that the packet path loads without capture calls no
// capture code: its helpers (bpf_xdp_load_bytes, bpf_xdp_get_buff_len)
// need 5.18, and a global function is verified whether or not a call to
// it can run, so a reference would keep flags and syn from loading on
// older kernels.
func TestPlainXDPProgramHasNoCaptureCode(t *testing.T) {
	spec, err := LoadPacketSpec(PacketConfig{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := spec.Programs["tcplens_xdp_capture"]; ok {
		t.Error("tcplens_xdp_capture is in the spec without capture")
	}
	for _, name := range []string{"tcplens_xdp", "tcplens_tc", "tcplens_tc_egress"} {
		for _, ins := range spec.Programs[name].Instructions {
			if sym := ins.Symbol(); sym == "capture_xdp" {
				t.Errorf("%s contains capture_xdp", name)
			}
			if ins.IsBuiltinCall() && (ins.Constant == int64(asm.FnXdpLoadBytes) || ins.Constant == int64(asm.FnXdpGetBuffLen)) {
				t.Errorf("%s calls %v", name, asm.BuiltinFunc(ins.Constant))
			}
		}
	}
	spec, err = LoadPacketSpec(PacketConfig{Capture: &CaptureConfig{Snaplen: SnapHeaders}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := spec.Programs["tcplens_xdp"]; ok {
		t.Error("tcplens_xdp is in the spec with capture (tcplens_xdp_capture replaces it)")
	}
	// The control: the search above finds the function where it is.
	found := false
	for _, ins := range spec.Programs["tcplens_xdp_capture"].Instructions {
		found = found || ins.Symbol() == "capture_xdp"
	}
	if !found {
		t.Error("capture_xdp not found in tcplens_xdp_capture: the search cannot see it")
	}
}
