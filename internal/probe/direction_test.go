package probe

import (
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket/layers"
)

func TestParseDirection(t *testing.T) {
	for s, want := range map[string]Direction{"in": DirIn, "out": DirOut, "both": DirBoth} {
		got, err := ParseDirection(s)
		if err != nil || got != want || got.String() != s {
			t.Errorf("ParseDirection(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "In", "egress", "inout"} {
		if _, err := ParseDirection(s); err == nil {
			t.Errorf("ParseDirection(%q) accepted", s)
		}
	}
	if got := DirBoth.Directions(); len(got) != 2 || got[0] != DirIn || got[1] != DirOut {
		t.Errorf("DirBoth.Directions() = %v", got)
	}
	if got := Direction(0).Directions(); len(got) != 1 || got[0] != DirIn {
		t.Errorf("zero Direction is %v, want in", got)
	}
}

// The egress program counts into the egress half of the counters (its own
// per slot), never into ingress, never drops (not even a SYN to a
// --drop-syn-port), and leaves the SYN tables alone: they are for SYNs
// received. Counts are spelled out from the frames sent.
func TestEgressProgramCountsApart(t *testing.T) {
	tp := loadTestPath(t, PacketConfig{TrackSYN: true, DropSYNPorts: []uint16{22}, Direction: DirBoth}, 2)
	v4 := func(sport, dport uint16, f uint8) []byte {
		return serialize(t, ethLayer(layers.EthernetTypeIPv4), ipv4Layer(layers.IPProtocolTCP), tcpLayer(sport, dport, f))
	}
	v6 := func(sport, dport uint16, f uint8) []byte {
		return serialize(t, ethLayer(layers.EthernetTypeIPv6), ipv6Layer(layers.IPProtocolTCP), tcpLayer(sport, dport, f))
	}
	frames := [][]byte{
		v4(50000, 22, flagSYN),         // SYN to a drop port: counted, passes
		v4(22, 50000, flagSYN|flagACK), // SYN-ACK sent by a server
		v6(8080, 40000, flagSYN|flagACK),
		v6(40000, 8080, flagACK),
		v4(50000, 22, flagFIN|flagACK),
		v4(50000, 22, flagRST),
	}
	if got := tp.pp.Maps.Counters.MaxEntries(); got != 2*MaxInterfaces {
		t.Errorf("counters map has %d entries, want %d (ingress and egress per slot)", got, 2*MaxInterfaces)
	}
	slot := 1
	for i, f := range frames {
		ret, err := tp.pp.EgressProgram(slot).Run(&ebpf.RunOptions{Data: f})
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if ret != tcUnspec {
			t.Errorf("frame %d: egress returned %d, want TC_ACT_UNSPEC", i, ret)
		}
	}
	out, err := tp.pp.DirCounters(uint32(slot), DirOut)
	if err != nil {
		t.Fatal(err)
	}
	want := FlagCounters{Packets: 6, TcpPackets: 6, Syn: 3, Ack: 4, Fin: 1, Rst: 1, SynNoAck: 1, SynAck: 2}
	if out != want {
		t.Errorf("egress counters of slot %d:\n got  %s\n want %s", slot, fmtCounters(out), fmtCounters(want))
	}
	for _, s := range []uint32{0, 1} {
		for _, d := range []Direction{DirIn, DirOut} {
			if s == uint32(slot) && d == DirOut {
				continue
			}
			c, err := tp.pp.DirCounters(s, d)
			if err != nil {
				t.Fatal(err)
			}
			if c != (FlagCounters{}) {
				t.Errorf("slot %d %v counted %s, want nothing", s, d, fmtCounters(c))
			}
		}
	}
	if m := tp.synMaps(t); len(m.tuples)+len(m.sources) != 0 {
		t.Errorf("egress SYNs went into the SYN tables: %v %v", m.tuples, m.sources)
	}
}

// flags and syn run without egress where the kernel has no TC egress
// hook, and doctor says so.
func TestEgressIsAnExtraOfPacketCommands(t *testing.T) {
	for _, cmd := range []string{"flags", "syn"} {
		found := false
		for _, e := range CommandExtras[cmd] {
			found = found || e.Feature == FeatTCEgress
		}
		if !found {
			t.Errorf("%s: extras %v lack %s", cmd, CommandExtras[cmd], FeatTCEgress)
		}
	}
	deg := Degraded([]Check{{Feature: FeatTCEgress, OK: false}})
	if len(deg["flags"]) != 1 || len(deg["syn"]) != 1 {
		t.Errorf("without TC egress: degraded %v, want flags and syn", deg)
	}
}
