package probe

// `syn --by signature` through both hooks with BPF_PROG_TEST_RUN, IPv4 and
// IPv6. The oracle is gopacket: the test writes each SYN's options with it
// and formats the signature it expects from that list itself (wantSig), so
// the BPF walk and its Go text form are checked against an encoding they
// do not share; malformed options, which gopacket will not write, are made
// by overwriting a length byte, and their signatures are written by hand.

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/gopacket/layers"

	"github.com/tcplens/tcplens/internal/testutil"
)

// wantSig formats the p0f-like signature of a well-formed option list as
// gopacket writes it: padded with zero bytes (end of list) to a multiple
// of 4.
func wantSig(opts []layers.TCPOption) string {
	size := 0
	for _, o := range opts {
		if o.OptionType == layers.TCPOptionKindEndList || o.OptionType == layers.TCPOptionKindNop {
			size++
		} else {
			size += 2 + len(o.OptionData)
		}
	}
	if size%4 != 0 {
		opts = append(append([]layers.TCPOption{}, opts...), layers.TCPOption{OptionType: layers.TCPOptionKindEndList})
	}
	return testutil.TCPOptionsSignature(opts)
}

func TestSYNSignatureCounts(t *testing.T) {
	mss := func(v uint16) layers.TCPOption {
		return layers.TCPOption{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{byte(v >> 8), byte(v)}}
	}
	nop := layers.TCPOption{OptionType: layers.TCPOptionKindNop}
	eol := layers.TCPOption{OptionType: layers.TCPOptionKindEndList}
	ws := func(s byte) layers.TCPOption {
		return layers.TCPOption{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{s}}
	}
	other := layers.TCPOption{OptionType: 30, OptionLength: 4, OptionData: []byte{1, 2}}
	eleven := []layers.TCPOption{mss(1000)}
	for i := 0; i < 10; i++ {
		eleven = append(eleven, nop)
	}
	const keep = -1
	cases := []struct {
		name  string
		flags uint8
		opts  []layers.TCPOption
		sig   string // "" : wantSig(opts); "none": not counted
		patch int    // unless keep, written over the length byte at patchAt
		at    int    // offset of that byte in the options
	}{
		{"linux", syn, synOptions, "", keep, 0},
		{"bare", syn, nil, "", keep, 0},
		{"mss 1400", syn, []layers.TCPOption{mss(1400)}, "", keep, 0},
		{"windows-like", syn, []layers.TCPOption{mss(1460), nop, ws(8), nop, nop, {OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2}}, "", keep, 0},
		{"unknown kind, eol", syn, []layers.TCPOption{other, eol, nop, nop, mss(1)}, "?E:-:-", keep, 0},
		{"eleven options", syn, eleven, "", keep, 0},
		{"first option length 1", syn, []layers.TCPOption{other, mss(1460)}, "-!:-:-", 1, 1},
		{"third option length 0", syn, []layers.TCPOption{mss(1460), ws(7), other}, "MW!:1460:7", 0, 4 + 3 + 1},
		{"option past the header", syn, []layers.TCPOption{mss(1460), other}, "M!:1460:-", 40, 4 + 1},
		{"mss of length 3", syn, []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionData: []byte{5}}, ws(2)}, "", keep, 0},
		{"syn-ack", synack, synOptions, "none", keep, 0},
		{"ack", ack, nil, "none", keep, 0},
		{"rst", flagRST, nil, "none", keep, 0},
	}
	for _, guard := range []bool{false, true} {
		for _, hook := range hooks {
			// With the guard on and the Linux signature on its drop list,
			// the view still counts it, without the stage's drop bit.
			tp := loadTestPath(t, PacketConfig{SYNSignatures: true, Guard: guard, GuardFakeClock: guard}, 1)
			if guard {
				linux, err := ParseSYNSignature(wantSig(synOptions))
				if err != nil {
					t.Fatal(err)
				}
				if err := tp.pp.SetGuardRules(GuardRules{DropSYNSignatures: []SYNSignature{linux}, DryRun: true}); err != nil {
					t.Fatal(err)
				}
			}
			want := map[string]uint64{}
			var synNoAck uint64
			// IPv4, IPv6, and IPv6 from a v4-mapped source (as syn's
			// tables see it: an IPv6 packet).
			for _, src := range []netip.Addr{addr(4, "10.0.0.1"), addr(6, "10.0.0.1"), netip.MustParseAddr("::ffff:10.0.0.1")} {
				fam := 4
				if src.Is6() {
					fam = 6
				}
				for i, c := range cases {
					frame := guardFrameWithOptions(t, fam, src, 80, c.flags, c.opts)
					if c.patch != keep {
						tcpOff := 14 + 20
						if fam == 6 {
							tcpOff = 14 + 40
						}
						frame[tcpOff+20+c.at] = byte(c.patch)
					}
					sig := c.sig
					if sig == "" {
						sig = wantSig(c.opts)
					}
					// A different count per case, so that no two swap unnoticed.
					for n := 0; n < i+1; n++ {
						_, fc, err := tp.runFrame(t, 0, hook, frame)
						if err != nil {
							t.Fatal(err)
						}
						if fc.TcpPackets != 1 {
							t.Fatalf("%s: not parsed as TCP", c.name)
						}
						synNoAck += fc.SynNoAck
					}
					if sig != "none" {
						want[sig] += uint64(i + 1)
					}
				}
			}
			got := map[string]uint64{}
			sigs, err := tp.pp.SYNSignatures()
			if err != nil {
				t.Fatal(err)
			}
			var total uint64
			for k, v := range sigs {
				if k.Slot != 0 {
					t.Errorf("%s guard=%v: signature %v on slot %d", hook, guard, k.Sig, k.Slot)
				}
				got[k.Sig.String()] += v
				total += v
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s guard=%v: signatures\n got %v\nwant %v", hook, guard, got, want)
			}
			if total != synNoAck {
				t.Errorf("%s guard=%v: %d SYNs in the table, the flag counters saw %d SYNs without ACK", hook, guard, total, synNoAck)
			}
			if u, err := tp.pp.SYNSignaturesUntracked(0); err != nil || u != 0 {
				t.Errorf("%s guard=%v: untracked %d (%v), want 0", hook, guard, u, err)
			}
		}
	}
}

// A table of two: the third signature is counted as untracked, exactly,
// and the next interval's table (after a swap) has room for it again.
func TestSYNSignatureTableFull(t *testing.T) {
	for _, hook := range hooks {
		tp := loadTestPath(t, PacketConfig{SYNSignatures: true, MaxSignatures: 2}, 1)
		send := func(fam int, opts []layers.TCPOption, n int) {
			for i := 0; i < n; i++ {
				if _, _, err := tp.runFrame(t, 0, hook, guardOptsFrame(t, fam, 80, syn, opts)); err != nil {
					t.Fatal(err)
				}
			}
		}
		mss := []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{5, 0xb4}}}
		send(4, synOptions, 3)
		send(6, nil, 2)
		send(4, mss, 4) // no room
		send(6, mss, 1) // no room
		send(6, synOptions, 2)
		tables, err := tp.pp.SwapSYN()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]uint64{}
		for k, v := range tables.Signatures {
			got[k.Sig.String()] = v
		}
		if want := fmt.Sprint(map[string]uint64{wantSig(synOptions): 5, "-:-:-": 2}); fmt.Sprint(got) != want {
			t.Errorf("%s: first interval %v, want %v", hook, got, want)
		}
		if u, err := tp.pp.SYNSignaturesUntracked(0); err != nil || u != 5 {
			t.Errorf("%s: untracked %d (%v), want 5", hook, u, err)
		}
		send(4, mss, 1)
		tables, err = tp.pp.SwapSYN()
		if err != nil {
			t.Fatal(err)
		}
		got = map[string]uint64{}
		for k, v := range tables.Signatures {
			got[k.Sig.String()] = v
		}
		if want := fmt.Sprint(map[string]uint64{"M:1460:-": 1}); fmt.Sprint(got) != want {
			t.Errorf("%s: second interval %v, want %v", hook, got, want)
		}
		if u, _ := tp.pp.SYNSignaturesUntracked(0); u != 5 {
			t.Errorf("%s: untracked %d after the second interval, want still 5", hook, u)
		}
	}
}

// Off (plain `syn`): no signature table, nothing counted.
func TestSYNSignatureOff(t *testing.T) {
	tp := loadTestPath(t, PacketConfig{TrackSYN: true}, 1)
	if _, _, err := tp.runFrame(t, 0, HookTC, guardOptsFrame(t, 4, 80, syn, synOptions)); err != nil {
		t.Fatal(err)
	}
	if _, err := tp.pp.SYNSignatures(); err == nil {
		t.Error("signature table readable with the view off")
	}
	if u, err := tp.pp.SYNSignaturesUntracked(0); err != nil || u != 0 {
		t.Errorf("untracked %d (%v) with the view off", u, err)
	}
}
