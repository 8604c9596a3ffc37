package probe

import (
	"reflect"
	"testing"
)

// TestHookTrials pins the order --hook tries: auto is tcx, then netlink
// TC, then generic XDP (native XDP first only on drivers where it pays);
// tc never falls back to XDP; tcx and tc-netlink try one thing only.
func TestHookTrials(t *testing.T) {
	veth := Interface{Name: "veth0"}
	mlx := Interface{Name: "eth0", Driver: "mlx5_core"}
	for _, tc := range []struct {
		hook  Hook
		iface Interface
		want  []hookTrial
	}{
		{HookAuto, veth, []hookTrial{{HookTC, ModeTCX}, {HookTC, ModeNetlink}, {HookXDP, ModeGeneric}}},
		{HookAuto, mlx, []hookTrial{{HookXDP, ModeNative}, {HookTC, ModeTCX}, {HookTC, ModeNetlink}, {HookXDP, ModeGeneric}}},
		{HookTC, veth, []hookTrial{{HookTC, ModeTCX}, {HookTC, ModeNetlink}}},
		{HookTCX, veth, []hookTrial{{HookTC, ModeTCX}}},
		{HookTCNetlink, veth, []hookTrial{{HookTC, ModeNetlink}}},
		{HookXDP, veth, []hookTrial{{HookXDP, ModeNative}, {HookXDP, ModeGeneric}}},
	} {
		if got := tc.hook.trials(tc.iface); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s on %s (%q): %v, want %v", tc.hook, tc.iface.Name, tc.iface.Driver, got, tc.want)
		}
	}
}

func TestParseHook(t *testing.T) {
	for _, ok := range []string{"auto", "xdp", "tc", "tcx", "tc-netlink"} {
		if h, err := ParseHook(ok); err != nil || string(h) != ok {
			t.Errorf("ParseHook(%q) = %q, %v", ok, h, err)
		}
	}
	for _, bad := range []string{"", "TC", "kprobe", "netlink"} {
		if _, err := ParseHook(bad); err == nil {
			t.Errorf("ParseHook(%q) accepted", bad)
		}
	}
}
