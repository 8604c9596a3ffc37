package integration

import (
	"fmt"
	"testing"
	"time"

	"github.com/tcplens/tcplens/internal/testnet"
	"github.com/tcplens/tcplens/internal/testutil"
)

// --syn-require-mss and --drop-syn-signature -:-:- (no options): real Linux connects (their SYNs carry MSS, SACK,
// timestamps, window scale) pass in IPv4 and IPv6, while bare SYNs
// written onto the veth by the test are dropped. The oracle is B's kernel:
// its PassiveOpens for the clients, and its RSTs for the bare SYNs (sent
// to a closed port, each one B's stack sees is answered with a RST; in a
// dry run all of them are).
func TestGuardSYNOptionRules(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	for _, hook := range []string{"tc", "xdp"} {
		for _, v := range []struct {
			rule, key string
			dry       bool
		}{
			{"--syn-require-mss", "matched.syn_require_mss", false},
			{"--syn-require-mss", "matched.syn_require_mss", true},
			{"--drop-syn-signature=-:-:-", "matched.drop_syn_signature", false},
		} {
			dry := v.dry
			t.Run(fmt.Sprintf("%s/%s/dry=%v", hook, v.rule, dry), func(t *testing.T) {
				t.Parallel()
				p := testnet.NewPair(t)
				prepareFloodTarget(t, p.B)
				srv4 := p.B.Listen(t, testnet.IPv4, 0)
				srv6 := p.B.Listen(t, testnet.IPv6, 0)
				args := []string{"guard", "-i", p.B.Link, "-o", "json", "--hook", hook, "--interval", "1h", v.rule}
				if dry {
					args = append(args, "--dry-run")
				}
				tl := p.B.StartTcplens(t, args...)
				before := snmp(t, p.B)
				const clients = 3
				for i := 0; i < clients; i++ {
					for _, fam := range []testnet.Family{testnet.IPv4, testnet.IPv6} {
						srv := srv4
						if fam == testnet.IPv6 {
							srv = srv6
						}
						if err := dialFrom(p.A, p.A.Addr(fam), srv.Addr, 3*time.Second); err != nil {
							t.Fatalf("client %d %v: %v", i, fam, err)
						}
					}
				}
				mid := waitSettled(t, p.B)
				if got := snmpDelta(t, before, mid, "Tcp:PassiveOpens"); got != 2*clients {
					t.Errorf("B's PassiveOpens grew by %d, want %d (every client)", got, 2*clients)
				}
				f := flood{syns: 50, sources: 50, dst: p.B.Addr(testnet.IPv4).AsSlice(), dport: floodDport, maxTime: 5 * time.Second}
				sent, _, err := f.send(p.A, p.B)
				if err != nil {
					t.Fatal(err)
				}
				after := waitSettled(t, p.B)
				rsts := snmpDelta(t, mid, after, "Tcp:OutRsts")
				res := tl.Stop()
				if res.ExitCode != 0 {
					t.Fatalf("tcplens exited %d: %s", res.ExitCode, res.Stderr)
				}
				sum := res.Summary(t, "")
				checkRange(t, sum, v.key, uint64(sent), uint64(sent))
				if dry {
					checkRange(t, sum, "dropped", 0, 0)
					if rsts != uint64(sent) {
						t.Errorf("B answered %d of %d bare SYNs with RST, want all (dry run)", rsts, sent)
					}
				} else {
					checkRange(t, sum, "dropped", uint64(sent), uint64(sent))
					if rsts != 0 {
						t.Errorf("B answered %d of %d bare SYNs with RST, want 0 (dropped before its stack)", rsts, sent)
					}
				}
			})
		}
	}
}
