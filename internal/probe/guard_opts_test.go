package probe

// The guard's TCP-option rule (--syn-require-mss) through both hooks with
// BPF_PROG_TEST_RUN, IPv4 and IPv6. The oracle is the table: gopacket
// writes the options, so which SYNs carry a well-formed MSS option is known
// independently of the BPF walker.

import (
	"fmt"
	"testing"

	"github.com/google/gopacket/layers"
)

func guardOptsFrame(t testing.TB, fam int, dport uint16, flags uint8, opts []layers.TCPOption) []byte {
	return guardFrameWithOptions(t, fam, addr(fam, "10.0.0.1"), dport, flags, opts)
}

func TestGuardSYNRequireMSS(t *testing.T) {
	const keep = -1
	nop := layers.TCPOption{OptionType: layers.TCPOptionKindNop}
	eol := layers.TCPOption{OptionType: layers.TCPOptionKindEndList}
	mss := layers.TCPOption{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}}
	other := layers.TCPOption{OptionType: 30, OptionLength: 4, OptionData: []byte{1, 2}}
	ws := layers.TCPOption{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}}
	cases := []struct {
		name  string
		dport uint16
		flags uint8
		opts  []layers.TCPOption
		drop  bool
		rule  GuardRule
		len0  int // unless keep, written over the first option's length (gopacket writes correct ones)
	}{
		{"linux options", 80, syn, synOptions, false, noRule, keep},
		{"bare syn", 80, syn, nil, true, GuardSYNNoMSS, keep},
		{"mss alone", 80, syn, []layers.TCPOption{mss}, false, noRule, keep},
		{"mss after nops and unknown", 80, syn, []layers.TCPOption{nop, nop, other, ws, mss}, false, noRule, keep},
		{"no mss", 80, syn, []layers.TCPOption{nop, ws, nop, nop}, true, GuardSYNNoMSS, keep},
		{"mss after eol", 80, syn, []layers.TCPOption{eol, nop, nop, nop, mss}, true, GuardSYNNoMSS, keep},
		{"option length 1", 80, syn, []layers.TCPOption{other, mss}, true, GuardSYNNoMSS, 1},
		{"option length 0", 80, syn, []layers.TCPOption{other, mss}, true, GuardSYNNoMSS, 0},
		{"mss length 3", 80, syn, []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionData: []byte{5}}}, true, GuardSYNNoMSS, keep},
		{"option past header", 80, syn, []layers.TCPOption{other, mss}, true, GuardSYNNoMSS, 40},
		{"mss past header", 80, syn, []layers.TCPOption{mss}, true, GuardSYNNoMSS, 6},
		{"11 nops then mss", 80, syn, append(append([]layers.TCPOption{}, nop, nop, nop, nop, nop, nop, nop, nop, nop, nop, nop), mss), true, GuardSYNNoMSS, keep},
		{"syn-ack without mss", 80, synack, nil, false, noRule, keep},
		{"ack", 80, ack, nil, false, noRule, keep},
		{"drop syn port first", 25, syn, nil, true, GuardDropSYNPort, keep},
	}
	for _, hook := range hooks {
		tp := loadTestPath(t, PacketConfig{Guard: true, GuardFakeClock: true}, 1)
		for _, dry := range []bool{false, true} {
			if err := tp.pp.SetGuardRules(GuardRules{RequireMSS: true, DropSYNPorts: []uint16{25}, DryRun: dry}); err != nil {
				t.Fatal(err)
			}
			for _, fam := range []int{4, 6} {
				for _, c := range cases {
					what := fmt.Sprintf("%s ipv%d dry=%v %s", hook, fam, dry, c.name)
					frame := guardOptsFrame(t, fam, c.dport, c.flags, c.opts)
					if c.len0 != keep {
						tcpOff := 14 + 20
						if fam == 6 {
							tcpOff = 14 + 40
						}
						frame[tcpOff+21] = byte(c.len0)
					}
					tp.checkGuardFrame(t, hook, what, frame, c.drop && !dry, c.rule)
				}
			}
		}
		// Off: a bare SYN passes.
		if err := tp.pp.SetGuardRules(GuardRules{}); err != nil {
			t.Fatal(err)
		}
		tp.checkGuardFrame(t, hook, "rule off", guardOptsFrame(t, 4, 80, syn, nil), false, noRule)
	}
}

// --drop-syn-signature: a SYN is dropped when the signature the stage
// computes equals a listed one. The table's signatures are written by hand
// from the options gopacket sends, so the stage's encoding and the text
// form are checked against each other.
func TestGuardSYNSignature(t *testing.T) {
	mss := func(v uint16) layers.TCPOption {
		return layers.TCPOption{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{byte(v >> 8), byte(v)}}
	}
	nop := layers.TCPOption{OptionType: layers.TCPOptionKindNop}
	ws := layers.TCPOption{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{0}}
	other := layers.TCPOption{OptionType: 30, OptionLength: 4, OptionData: []byte{1, 2}}
	eleven := []layers.TCPOption{mss(1000)}
	for i := 0; i < 10; i++ {
		eleven = append(eleven, nop)
	}
	listed := []string{"MSTNW:1460:7", "-:-:-", "M:1400:-", "NW?:-:0", "MNNNNNNNNN+:1000:-"}
	var sigs []SYNSignature
	for _, s := range listed {
		sig, err := ParseSYNSignature(s)
		if err != nil {
			t.Fatal(err)
		}
		sigs = append(sigs, sig)
	}
	cases := []struct {
		name  string
		flags uint8
		opts  []layers.TCPOption
		drop  bool
		rule  GuardRule
	}{
		{"linux", syn, synOptions, true, GuardSYNSignature},
		{"linux other mss", syn, []layers.TCPOption{mss(1400), synOptions[1], synOptions[2], synOptions[3], synOptions[4]}, false, noRule},
		{"bare", syn, nil, true, GuardSYNSignature},
		{"mss 1400", syn, []layers.TCPOption{mss(1400)}, true, GuardSYNSignature},
		{"mss 1401", syn, []layers.TCPOption{mss(1401)}, false, noRule},
		{"nop ws0 other", syn, []layers.TCPOption{nop, ws, other}, true, GuardSYNSignature},
		{"eleven options", syn, eleven, true, GuardSYNSignature},
		{"syn-ack linux", synack, synOptions, false, noRule},
	}
	for _, hook := range hooks {
		tp := loadTestPath(t, PacketConfig{Guard: true, GuardFakeClock: true}, 1)
		if err := tp.pp.SetGuardRules(GuardRules{DropSYNSignatures: sigs}); err != nil {
			t.Fatal(err)
		}
		for _, fam := range []int{4, 6} {
			for _, c := range cases {
				what := fmt.Sprintf("%s ipv%d %s", hook, fam, c.name)
				tp.checkGuardFrame(t, hook, what, guardOptsFrame(t, fam, 80, c.flags, c.opts), c.drop, c.rule)
			}
		}
		// --syn-require-mss decides first.
		if err := tp.pp.SetGuardRules(GuardRules{RequireMSS: true, DropSYNSignatures: sigs}); err != nil {
			t.Fatal(err)
		}
		tp.checkGuardFrame(t, hook, "bare, both rules", guardOptsFrame(t, 4, 80, syn, nil), true, GuardSYNNoMSS)
		tp.checkGuardFrame(t, hook, "linux, both rules", guardOptsFrame(t, 4, 80, syn, synOptions), true, GuardSYNSignature)
	}
}

func TestSYNSignatureText(t *testing.T) {
	for _, s := range []string{"MSTNW:1460:7", "-:-:-", "-!:-:-", "M!:-:-", "NNNNNNNNNN+:-:-", "MNWNNT?E:536:14", "W:-:0"} {
		sig, err := ParseSYNSignature(s)
		if err != nil {
			t.Errorf("%s: %v", s, err)
			continue
		}
		if got := sig.String(); got != s {
			t.Errorf("%s: formats as %s", s, got)
		}
	}
	for _, s := range []string{"", "MSTNW", "MSTNW:1460", "MX:-:-", "M:70000:-", "W:-:256", "NNNNNNNNNNN:-:-", "M+:-:-", "M:x:-"} {
		if _, err := ParseSYNSignature(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}
