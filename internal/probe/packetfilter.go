package probe

import (
	"encoding/binary"
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/tcplens/tcplens/internal/bpfobj"
	"github.com/tcplens/tcplens/internal/pfilter"
)

// kernelPacketFilter lays a filter program out as struct pkt_filter_cfg
// (bpf/pktfilter.h).
func kernelPacketFilter(prog pfilter.Program) (bpfobj.PacketPktFilterCfg, error) {
	var k bpfobj.PacketPktFilterCfg
	if err := prog.Check(); err != nil {
		return k, err
	}
	if len(prog) > len(k.Insns) {
		return k, fmt.Errorf("filter: %d instructions, the object holds %d", len(prog), len(k.Insns))
	}
	k.N_insns = uint8(len(prog))
	for i, in := range prog {
		ki := &k.Insns[i]
		ki.Op, ki.Dir = uint8(in.Op), uint8(in.Dir)
		ki.PortLo, ki.PortHi = in.PortLo, in.PortHi
		switch in.Op {
		case pfilter.OpHost:
			k.NeedsAddrs = 1
			ki.Arg = in.Family
			addr, bits := in.Prefix.Addr(), in.Prefix.Bits()
			var a [16]byte
			if addr.Is4() {
				a4 := addr.As4()
				copy(a[:], a4[:])
			} else {
				a = addr.As16()
			}
			for w := 0; w < 4; w++ {
				b := min(max(bits-32*w, 0), 32)
				var m [4]byte
				if b > 0 {
					binary.BigEndian.PutUint32(m[:], ^uint32(0)<<(32-b))
				}
				// The kernel compares the words as they lie in memory.
				ki.Mask[w] = binary.NativeEndian.Uint32(m[:])
				ki.Addr[w] = binary.NativeEndian.Uint32(a[4*w:]) & ki.Mask[w]
			}
		case pfilter.OpFamily:
			ki.Arg = in.Family
		case pfilter.OpFlags:
			ki.Arg = in.Flags
		}
	}
	return k, nil
}

// CaptureConfig switches on the capture stage.
type CaptureConfig struct {
	// Snaplen is how many bytes of each packet to copy: SnapHeaders for
	// the Ethernet, IP and TCP headers with options, else at most
	// MaxSnaplen.
	Snaplen uint32
	// RingSize is the ring buffer's size in bytes, a power of two of at
	// least a page (0: 4 MiB).
	RingSize uint32
}

const (
	// SnapHeaders asks for the headers only (CAPTURE_SNAP_HEADERS).
	SnapHeaders = 0xffffffff
	// MaxSnaplen is the most the capture stage copies of a packet
	// (CAPTURE_MAX_SNAPLEN in bpf/capture.h).
	MaxSnaplen = 4096
)

// CaptureCounters are the capture stage's counters, summed over CPUs.
type CaptureCounters = bpfobj.PacketCaptureCounters

// CaptureEvent is the header of a capture record; the frame's CapLen
// bytes follow it.
type CaptureEvent = bpfobj.PacketCaptureEvent

// configureFilterAndCapture sets the filter and capture constants and
// sizes the ring.
func configureFilterAndCapture(spec *ebpf.CollectionSpec, cfg PacketConfig) error {
	k, err := kernelPacketFilter(cfg.Filter)
	if err != nil {
		return err
	}
	if err := spec.Variables[bpfobj.PacketVarPktFilter].Set(k); err != nil {
		return fmt.Errorf("set packet filter: %w", err)
	}
	// Of the two XDP programs only one is loaded: the plain one calls no
	// capture code, whose XDP helpers need 5.18 (bpf/capture.h).
	if cfg.Capture == nil {
		delete(spec.Programs, bpfobj.PacketProgTcplensXdpCapture)
	} else {
		delete(spec.Programs, bpfobj.PacketProgTcplensXdp)
	}
	ring := spec.Maps[bpfobj.PacketMapCaptureRing]
	if cfg.Capture == nil {
		ring.MaxEntries = 4096 // unused: the smallest ring
		return nil
	}
	c := cfg.Capture
	if c.Snaplen != SnapHeaders && (c.Snaplen == 0 || c.Snaplen > MaxSnaplen) {
		return fmt.Errorf("snaplen %d: 1 to %d bytes", c.Snaplen, MaxSnaplen)
	}
	if c.RingSize != 0 {
		if c.RingSize < 4096 || c.RingSize&(c.RingSize-1) != 0 {
			return fmt.Errorf("ring buffer size %d: a power of two of at least 4096", c.RingSize)
		}
		ring.MaxEntries = c.RingSize
	}
	kc := bpfobj.PacketCaptureConfig{Snaplen: c.Snaplen, Enabled: 1}
	if err := spec.Variables[bpfobj.PacketVarCaptureCfg].Set(kc); err != nil {
		return fmt.Errorf("configure capture: %w", err)
	}
	return nil
}

// CaptureCounters sums the capture stage's per-CPU counters.
func (p *PacketPath) CaptureCounters() (CaptureCounters, error) {
	var perCPU []CaptureCounters
	if err := p.Maps.CaptureStats.Lookup(uint32(0), &perCPU); err != nil {
		return CaptureCounters{}, fmt.Errorf("read capture counters: %w", err)
	}
	var sum CaptureCounters
	for _, c := range perCPU {
		sum.Matched += c.Matched
		sum.Captured += c.Captured
		sum.Lost += c.Lost
	}
	return sum, nil
}
