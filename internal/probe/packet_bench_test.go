package probe

// Per-packet cost of the packet path, measured with BPF_PROG_TEST_RUN
// against the cheapest program the same hook can run (bpf/bench_empty.c),
// both measured in the same benchmark run, in alternating chunks, so the
// ratio survives a noisy shared machine better than either number alone.
//
//	go test -run '^$' -bench PacketPath -count 5 ./internal/probe/
//
// Metrics: ns/pkt is tcplens's kernel-measured time per packet, empty-ns/pkt
// the empty program's, x-empty their ratio. The kernel reports the time per
// run of one BPF_PROG_TEST_RUN call in whole nanoseconds, averaged over its
// repeat count; ns/op is Go's wall clock per iteration (both programs plus
// amortized syscalls) and says nothing on its own.

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/tcplens/tcplens/internal/bpfobj"
	"github.com/tcplens/tcplens/internal/testutil"
)

// benchChunk is how many packets one BPF_PROG_TEST_RUN call repeats: long
// enough to hide the syscall, short enough to alternate programs often.
const benchChunk = 1 << 16

// Rotating-tuple SYN benchmarks: four times as many tuples as the tuple
// table holds, so in steady state the table is full (nothing is evicted)
// and every SYN is counted as untracked. test/integration's
// BenchmarkSynFloodCost measures a real flood, fill phase included.
const (
	benchMaxTuples      = 16384
	benchRotatingTuples = 4 * benchMaxTuples
	benchSYNPort        = 80
	benchDroppedPort    = 23 // a drop rule exists, but not for benchSYNPort
)

type benchPrograms struct {
	pp       *PacketPath
	emptyXDP *ebpf.Program
	emptyTC  *ebpf.Program
}

func loadBenchPrograms(b *testing.B) *benchPrograms {
	b.Helper()
	testutil.RequirePrivileged(b)
	pp, err := LoadPacketPath(PacketConfig{
		TrackSYN:     true,
		MaxTuples:    benchMaxTuples,
		MaxSources:   benchMaxTuples,
		DropSYNPorts: []uint16{benchDroppedPort},
	}, 1)
	if err != nil {
		b.Fatalf("load packet path: %v", err)
	}
	b.Cleanup(func() { pp.Close() })
	var objs bpfobj.BenchObjects
	if err := bpfobj.LoadBenchObjects(&objs, nil); err != nil {
		b.Fatalf("load empty baseline programs: %v", err)
	}
	b.Cleanup(func() { objs.Close() })
	return &benchPrograms{pp: pp, emptyXDP: objs.EmptyXdp, emptyTC: objs.EmptyTc}
}

func (bp *benchPrograms) programs(hook Hook) (empty, lens *ebpf.Program) {
	if hook == HookTC {
		return bp.emptyTC, bp.pp.Program(0, HookTC)
	}
	return bp.emptyXDP, bp.pp.Program(0, HookXDP)
}

// benchFrame serializes one Ethernet frame carrying a bare TCP segment.
func benchFrame(b *testing.B, v6 bool, src net.IP, sport, dport uint16, syn bool) []byte {
	b.Helper()
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), Seq: 1, Window: 64240}
	ts := layers.TCPOption{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: make([]byte, 8)}
	nop := layers.TCPOption{OptionType: layers.TCPOptionKindNop}
	if syn {
		// What Linux sends: MSS, SACK permitted, timestamps, window scale.
		tcp.SYN = true
		tcp.Options = []layers.TCPOption{
			{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}},
			{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2},
			ts, nop,
			{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}},
		}
	} else {
		tcp.ACK, tcp.Ack = true, 1
		tcp.Options = []layers.TCPOption{nop, nop, ts}
	}
	eth := &layers.Ethernet{
		SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2},
		EthernetType: layers.EthernetTypeIPv4,
	}
	var ip gopacket.SerializableLayer
	if v6 {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip = &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP,
			SrcIP: src, DstIP: net.ParseIP("2001:db8:ffff::14")}
	} else {
		ip = &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP,
			SrcIP: src, DstIP: net.IP{198, 51, 100, 20}}
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, eth, ip, tcp); err != nil {
		b.Fatalf("serialize frame: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func benchSrc(v6 bool, i int) net.IP {
	if v6 {
		ip := net.ParseIP("2001:db8::")
		ip[14], ip[15] = byte(i>>8), byte(i)
		return ip
	}
	return net.IP{192, 0, byte(2 + i>>8), byte(i)}
}

// benchFrames returns n frames, each a different 4-tuple when n > 1.
func benchFrames(b *testing.B, v6, syn bool, n int) [][]byte {
	frames := make([][]byte, n)
	for i := range frames {
		// 256 sources × 256 ports: sources repeat, tuples do not.
		frames[i] = benchFrame(b, v6, benchSrc(v6, i%256), uint16(10000+i/256), benchSYNPort, syn)
	}
	return frames
}

// checkPath makes sure a frame takes the path the benchmark claims to
// measure (TCP parsed; a SYN counted as a connection attempt and passed),
// so a parser regression cannot turn into a fast early exit.
func checkPath(b *testing.B, bp *benchPrograms, hook Hook, frame []byte, syn bool) {
	b.Helper()
	before, err := bp.pp.Counters(0)
	if err != nil {
		b.Fatal(err)
	}
	ret, _, err := bp.pp.Program(0, hook).Test(frame)
	if err != nil {
		b.Fatalf("run %s: %v", hook, err)
	}
	after, err := bp.pp.Counters(0)
	if err != nil {
		b.Fatal(err)
	}
	if want := wantReturn(hook, false); ret != want {
		b.Fatalf("%s returned %d, want %d", hook, ret, want)
	}
	if after.TcpPackets != before.TcpPackets+1 {
		b.Fatalf("%s did not parse the frame as TCP", hook)
	}
	if syn && after.SynNoAck != before.SynNoAck+1 {
		b.Fatalf("%s did not count the SYN as a connection attempt", hook)
	}
}

// benchPair runs b.N packets through each of empty and lens, alternating
// chunks of repeat packets per call, and reports both costs and the ratio.
// frames are cycled one per call; with one frame every call repeats it.
func benchPair(b *testing.B, empty, lens *ebpf.Program, frames [][]byte, repeat int) {
	var emptyNs, lensNs float64
	b.ResetTimer()
	for done, i := 0, 0; done < b.N; i++ {
		r := min(repeat, b.N-done)
		frame := frames[i%len(frames)]
		_, de, err := empty.Benchmark(frame, r, nil)
		if err != nil {
			b.Fatalf("run empty program: %v", err)
		}
		_, dl, err := lens.Benchmark(frame, r, nil)
		if err != nil {
			b.Fatalf("run tcplens program: %v", err)
		}
		emptyNs += float64(de/time.Nanosecond) * float64(r)
		lensNs += float64(dl/time.Nanosecond) * float64(r)
		done += r
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(lensNs/n, "ns/pkt")
	b.ReportMetric(emptyNs/n, "empty-ns/pkt")
	if emptyNs > 0 {
		b.ReportMetric(lensNs/emptyNs, "x-empty")
	}
}

func BenchmarkPacketPath(b *testing.B) {
	bp := loadBenchPrograms(b)
	for _, hook := range []Hook{HookXDP, HookTC} {
		empty, lens := bp.programs(hook)
		for _, fam := range []struct {
			name string
			v6   bool
		}{{"ipv4", false}, {"ipv6", true}} {
			// Established traffic: an ACK with the timestamps option.
			b.Run(fmt.Sprintf("%s/%s/ack", hook, fam.name), func(b *testing.B) {
				frames := benchFrames(b, fam.v6, false, 1)
				checkPath(b, bp, hook, frames[0], false)
				benchPair(b, empty, lens, frames, benchChunk)
			})
			// A SYN flood from one tuple: map lookups that hit.
			b.Run(fmt.Sprintf("%s/%s/syn-same-tuple", hook, fam.name), func(b *testing.B) {
				frames := benchFrames(b, fam.v6, true, 1)
				checkPath(b, bp, hook, frames[0], true)
				benchPair(b, empty, lens, frames, benchChunk)
			})
			// A SYN flood from many tuples: every SYN a new tuple, arriving
			// at a full tuple table. BPF_PROG_TEST_RUN repeats one frame, so
			// each call runs a frame once, and the kernel's timer (read
			// around each call) is part of both numbers: the ratio here
			// understates the real one; compare ns/pkt differences.
			b.Run(fmt.Sprintf("%s/%s/syn-rotating-tuples", hook, fam.name), func(b *testing.B) {
				frames := benchFrames(b, fam.v6, true, benchRotatingTuples)
				checkPath(b, bp, hook, frames[0], true)
				for _, f := range frames { // fill the map: measure steady state
					if _, _, err := lens.Test(f); err != nil {
						b.Fatal(err)
					}
				}
				benchPair(b, empty, lens, frames, 1)
			})
		}
	}
}
