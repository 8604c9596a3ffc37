package probe

import (
	"errors"
	"testing"
)

func TestPrivilegeError(t *testing.T) {
	err := error(&PrivilegeError{Needs: PacketPathCaps, Missing: []Capability{CapPerfmon}})
	if !errors.Is(err, ErrPrivileges) {
		t.Errorf("PrivilegeError does not match ErrPrivileges")
	}
	want := "needs root, or CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON; missing CAP_PERFMON"
	if err.Error() != want {
		t.Errorf("got %q, want %q", err, want)
	}
}

// The kernel lets CAP_SYS_ADMIN stand in for CAP_BPF, CAP_PERFMON and the
// net-admin check of program loading, and CAP_DAC_OVERRIDE for reads.
func TestCapabilityStandIns(t *testing.T) {
	bit := func(cs ...Capability) (m uint64) {
		for _, c := range cs {
			m |= 1 << c.Bit
		}
		return m
	}
	for _, tc := range []struct {
		eff  uint64
		c    Capability
		want bool
	}{
		{bit(CapBPF), CapBPF, true},
		{bit(CapBPF), CapPerfmon, false},
		{bit(CapSysAdmin), CapBPF, true},
		{bit(CapSysAdmin), CapPerfmon, true},
		{bit(CapSysAdmin), CapNetAdmin, true},
		{bit(CapSysAdmin), CapDACReadSearch, false},
		{bit(CapDACOverride), CapDACReadSearch, true},
		{bit(CapNetAdmin), CapBPF, false},
	} {
		if got := has(tc.eff, tc.c); got != tc.want {
			t.Errorf("has(%#x, %s) = %v, want %v", tc.eff, tc.c.Name, got, tc.want)
		}
	}
}

func TestEveryCommandHasCapabilities(t *testing.T) {
	for cmd := range CommandNeeds {
		if len(CommandCaps[cmd]) == 0 {
			t.Errorf("%s: no capabilities in CommandCaps", cmd)
		}
	}
}
