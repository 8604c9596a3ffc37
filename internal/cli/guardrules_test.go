package cli

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tcplens/tcplens/internal/probe"
)

func TestGuardRulesFile(t *testing.T) {
	g, err := parseGuardRules("r.yaml", []byte(`
allow: [192.0.2.1]
block:
  - 10.0.0.0/8
  - 2001:db8::/32
drop_port: [8080]
drop_syn_port: [25]
syn_require_mss: true
drop_syn_signature: ["-:-:-", MSTNW:1460:7]
syn_rate: 100
syn_burst: 20
syn_rate_global: 10000
scan_ports: 20
scan_window: 5s
block_for: 1m
dry_run: true
`))
	if err != nil {
		t.Fatal(err)
	}
	want := probe.GuardRules{
		Allow:     []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")},
		Block:     []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")},
		DropPorts: []uint16{8080}, DropSYNPorts: []uint16{25}, RequireMSS: true, DropSYNSignatures: sigs(t, "-:-:-", "MSTNW:1460:7"), SYNRate: 100, SYNBurst: 20, SYNRateGlobal: 10000,
		ScanPorts: 20, ScanWindow: 5 * time.Second, BlockFor: time.Minute, DryRun: true,
	}
	if !reflect.DeepEqual(g, want) {
		t.Errorf("rules\n%+v\nwant\n%+v", g, want)
	}
}

// Each bad file is refused with the line of the bad value.
func TestGuardRulesFileErrors(t *testing.T) {
	for _, c := range []struct{ file, want string }{
		{"block:\n  - 10.0.0.0/8\n  - 10.0.0.300/8\n", "r.yaml: line 3: block: \"10.0.0.300/8\" is not an address or CIDR"},
		{"drop_port: [80]\nbogus: 1\n", `r.yaml: line 2: unknown rule "bogus"`},
		{"drop_syn_port:\n  - 25\n  - 70000\n", "r.yaml: line 3: drop_syn_port: port 70000"},
		{"scan_ports: 5\nscan_window: soon\nblock_for: 1m\n", `r.yaml: line 2: scan_window: "soon" is not a positive duration`},
		{"syn_rate: fast\n", "r.yaml: line 1:"},
		{"drop_syn_signature:\n  - MSTNW:1460:7\n  - MX:-:-\n", `r.yaml: line 3: drop_syn_signature: SYN signature "MX:-:-"`},
		{"block: [10.0.0.0/8\n", "r.yaml: line 1"},
		{"- 1\n- 2\n", "r.yaml: line 1: the rules are a mapping"},
		{"scan_ports: 1\nscan_window: 1s\nblock_for: 1s\n", "r.yaml: --scan-ports 1"},
	} {
		_, err := parseGuardRules("r.yaml", []byte(c.file))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("file %q: error %v, want %q", c.file, err, c.want)
		}
	}
}

func TestGuardLockout(t *testing.T) {
	peers := []sshPeer{{netip.MustParseAddr("10.9.9.9"), 22}}
	for _, c := range []struct {
		rules probe.GuardRules
		cut   bool
	}{
		{probe.GuardRules{Block: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}}, true},
		{probe.GuardRules{Block: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}, Allow: []netip.Prefix{netip.MustParsePrefix("10.9.9.9/32")}}, false},
		{probe.GuardRules{Block: []netip.Prefix{netip.MustParsePrefix("10.8.0.0/16")}}, false},
		{probe.GuardRules{DropPorts: []uint16{22}}, true},
		{probe.GuardRules{DropSYNPorts: []uint16{22}}, true},
		{probe.GuardRules{DropPorts: []uint16{22}, DryRun: true}, false},
		{probe.GuardRules{SYNRate: 1, SYNBurst: 1}, false},
	} {
		if got := lockout(c.rules, peers) != ""; got != c.cut {
			t.Errorf("%+v: lockout %v, want %v", c.rules, got, c.cut)
		}
	}
}

func TestParseProcNetSSH(t *testing.T) {
	data := []byte(`  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0016 0200007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 20 4 30 10 -1
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 100 0 0 10 0
   2: 0100007F:1F90 0300007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 20 4 30 10 -1
`)
	got := parseProcNetSSH(data)
	if len(got) != 1 || got[0].client != netip.MustParseAddr("127.0.0.2") {
		t.Errorf("peers %+v, want 127.0.0.2 only", got)
	}
	data6 := []byte("hdr\n 0: 00000000000000000000000001000000:0016 B80D0120000000000000000001000000:D431 01 x\n")
	got = parseProcNetSSH(data6)
	if len(got) != 1 || got[0].client != netip.MustParseAddr("2001:db8::1") {
		t.Errorf("peers %+v, want 2001:db8::1", got)
	}
}

func sigs(t *testing.T, texts ...string) []probe.SYNSignature {
	t.Helper()
	var out []probe.SYNSignature
	for _, s := range texts {
		sig, err := probe.ParseSYNSignature(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, sig)
	}
	return out
}
