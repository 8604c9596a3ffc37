package testutil

import "os"

// Emulated says why the test's clock is not hardware timing, or "" when it
// is. The kernel matrix (test/kernels) sets TCPLENS_EMULATION=tcg when qemu
// emulates the CPU in software: the guest then runs several times slower
// and unevenly (a vCPU can stall for milliseconds), so RTTs jump between
// two samples in a way they do not on hardware or under KVM.
func Emulated() string {
	if e := os.Getenv("TCPLENS_EMULATION"); e != "" {
		return "the CPU is emulated (TCPLENS_EMULATION=" + e + "): its clock and scheduling are not hardware timing"
	}
	return ""
}
