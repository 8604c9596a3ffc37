package probe

// Per-packet cost of the filter and capture stages, with BPF_PROG_TEST_RUN,
// against the empty program and the packet path without them, all in the
// same run in alternating chunks (as BenchmarkPacketPath):
//
//	go test -run '^$' -bench CaptureStage -count 5 ./internal/probe/
//
// Metrics: ns/pkt is the measured variant's kernel time per packet,
// base-ns/pkt the packet path's without filter or capture, empty-ns/pkt the
// empty program's; stage-ns/pkt = ns/pkt - base-ns/pkt. While the capture
// variant runs, a goroutine drains its ring as `tcplens capture` does, so
// the records measured are written, not refused (lost/pkt says how many
// were refused anyway).

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/tcplens/tcplens/internal/bpfobj"
	"github.com/tcplens/tcplens/internal/pfilter"
	"github.com/tcplens/tcplens/internal/testutil"
)

func BenchmarkCaptureStage(b *testing.B) {
	loadPath := func(cfg PacketConfig) *PacketPath {
		pp, err := LoadPacketPath(cfg, 1)
		if err != nil {
			b.Fatalf("load packet path: %v", err)
		}
		b.Cleanup(func() { pp.Close() })
		return pp
	}
	testutil.RequirePrivileged(b)
	var objs bpfobj.BenchObjects
	if err := bpfobj.LoadBenchObjects(&objs, nil); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { objs.Close() })
	base := loadPath(PacketConfig{})
	filter, err := pfilter.Parse("(port 80 or port 443) and not net 10.0.0.0/8")
	if err != nil {
		b.Fatal(err)
	}
	variants := []struct {
		name string
		cfg  PacketConfig
	}{
		{"filter", PacketConfig{Filter: filter}},
		{"capture-headers", PacketConfig{Capture: &CaptureConfig{Snaplen: SnapHeaders, RingSize: 16 << 20}}},
		{"filter+capture-headers", PacketConfig{Filter: filter, Capture: &CaptureConfig{Snaplen: SnapHeaders, RingSize: 16 << 20}}},
	}
	frame := benchFrames(b, false, false, 1)[0]
	for _, v := range variants {
		pp := loadPath(v.cfg)
		for _, hook := range []Hook{HookXDP, HookTC} {
			empty := objs.EmptyXdp
			if hook == HookTC {
				empty = objs.EmptyTc
			}
			b.Run(v.name+"/"+string(hook), func(b *testing.B) {
				stop := drain(b, pp, v.cfg.Capture != nil)
				runTriple(b, empty, base.Program(0, hook), pp.Program(0, hook), frame)
				lost := stop()
				b.ReportMetric(float64(lost)/float64(b.N), "lost/pkt")
			})
		}
	}
}

// drain reads the capture ring until stopped; stop returns the lost count.
func drain(b *testing.B, pp *PacketPath, on bool) (stop func() uint64) {
	if !on {
		return func() uint64 { return 0 }
	}
	rd, err := pp.NewCaptureReader()
	if err != nil {
		b.Fatal(err)
	}
	before, _ := pp.CaptureCounters()
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			if _, _, err := rd.Read(time.Now().Add(10 * time.Millisecond)); err != nil && !errors.Is(err, ErrNoRecord) {
				return
			}
		}
	}()
	return func() uint64 {
		close(done)
		wg.Wait()
		rd.Close()
		after, _ := pp.CaptureCounters()
		return after.Lost - before.Lost
	}
}

func runTriple(b *testing.B, empty, base, lens *ebpf.Program, frame []byte) {
	var emptyNs, baseNs, lensNs float64
	const chunk = 1 << 12 // short: the ring (16 MiB, ~100-byte records) holds several chunks
	b.ResetTimer()
	for done := 0; done < b.N; {
		r := min(chunk, b.N-done)
		for _, p := range []struct {
			prog *ebpf.Program
			sum  *float64
		}{{empty, &emptyNs}, {base, &baseNs}, {lens, &lensNs}} {
			_, d, err := p.prog.Benchmark(frame, r, nil)
			if err != nil {
				b.Fatal(err)
			}
			*p.sum += float64(d/time.Nanosecond) * float64(r)
		}
		done += r
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(lensNs/n, "ns/pkt")
	b.ReportMetric(baseNs/n, "base-ns/pkt")
	b.ReportMetric(emptyNs/n, "empty-ns/pkt")
	b.ReportMetric((lensNs-baseNs)/n, "stage-ns/pkt")
}
