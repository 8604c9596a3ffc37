package probe

import (
	"net/netip"
	"testing"
)

func TestDefaultRouteFromProcFiles(t *testing.T) {
	if got := defaultRoute4("testdata/route"); got != "eth0" {
		t.Errorf("IPv4 default route device = %q, want eth0", got)
	}
	if got := defaultRoute4("testdata/route_nodefault"); got != "" {
		t.Errorf("no IPv4 default route: got %q, want none", got)
	}
	// The unreachable default on lo that every IPv6 host has is not a route out.
	if got := defaultRoute6("testdata/ipv6_route"); got != "wlan0" {
		t.Errorf("IPv6 default route device = %q, want wlan0", got)
	}
	if got := defaultRoute4("testdata/does-not-exist"); got != "" {
		t.Errorf("missing file: got %q, want none", got)
	}
}

func TestChooseHook(t *testing.T) {
	cases := map[string]Hook{
		"":           HookTC, // veth, bridge, tunnel, lo: no driver in sysfs
		"veth":       HookTC,
		"virtio_net": HookTC,
		"mlx5_core":  HookXDP,
		"i40e":       HookXDP,
		"ice":        HookXDP,
	}
	for driver, want := range cases {
		if got := ChooseHook(Interface{Name: "x", Driver: driver}); got != want {
			t.Errorf("driver %q: hook %s, want %s", driver, got, want)
		}
	}
}

func TestParseHost(t *testing.T) {
	cases := []struct {
		in   string
		want string
		bad  bool
	}{
		{in: "10.1.2.3", want: "10.1.2.3/32"},
		{in: "10.1.2.3/8", want: "10.0.0.0/8"},
		{in: "fd00::1", want: "fd00::1/128"},
		{in: "fd00::1/64", want: "fd00::/64"},
		{in: "::ffff:10.0.0.1", want: "10.0.0.1/32"},
		{in: "example.com", bad: true},
		{in: "10.0.0.0/33", bad: true},
	}
	for _, c := range cases {
		got, err := ParseHost(c.in)
		if c.bad {
			if err == nil {
				t.Errorf("ParseHost(%q) = %v, want an error", c.in, got)
			}
			continue
		}
		if err != nil || got != netip.MustParsePrefix(c.want) {
			t.Errorf("ParseHost(%q) = %v, %v; want %s", c.in, got, err, c.want)
		}
	}
}
