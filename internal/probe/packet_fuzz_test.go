package probe

import (
	"errors"
	"testing"
)

// FuzzPacketParser feeds arbitrary frames to the XDP program and holds its
// counters, verdict and SYN tuple/source counts to the oracle. Plain
// `go test` runs only the seeds: every table case, and the regressions
// under testdata/fuzz/FuzzPacketParser.
func FuzzPacketParser(f *testing.F) {
	for _, c := range frameCases(f) {
		f.Add(c.frame)
	}
	tp := loadTestPath(f, PacketConfig{TrackSYN: true, DropSYNPorts: []uint16{22, 443, 8443}}, 1)
	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) > 1500 {
			// Past the test-run limit for a program without frags support;
			// longer frames add nothing the parser reads.
			frame = frame[:1500]
		}
		if _, err := tp.checkFrame(t, 0, HookXDP, frame, false); err != nil && !errors.Is(err, errNotRunnable) {
			t.Fatalf("%v\nframe % x", err, frame)
		}
	})
}
