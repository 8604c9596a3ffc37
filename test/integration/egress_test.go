package integration

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tcplens/tcplens/internal/testnet"
	"github.com/tcplens/tcplens/internal/testutil"
)

// dirSummary is the flags summary of iface in direction dir ("in", "out").
func dirSummary(t *testing.T, res testnet.Result, iface, dir string) testnet.Record {
	t.Helper()
	var found []testnet.Record
	for _, r := range res.Records(t) {
		if r.Type() == "summary" && r.String(t, "interface") == iface && r.String(t, "direction") == dir {
			found = append(found, r)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d %s summaries for %s, want 1; stdout:\n%s", len(found), dir, iface, res.Stdout)
	}
	return found[0]
}

// TestDirectionBothCountsSYNACKs runs flags and syn with --direction both
// on the server's veth (B) while A opens n connections to B and closes
// them. The truth is each namespace's own counters, and tcpdump on the
// same veth for each flag of what B sent: B, a pure server,
// sends one SYN-ACK per passive open plus its SYN-ACK retransmissions
// (TCPSynRetrans counts only those in a namespace that sends no SYN), and
// every segment it sends is in OutSegs or RetransSegs; A's SYNs are its
// active opens plus its SYN retransmissions. Ingress keeps counting what
// A sent, so egress counts nothing into ingress and the reverse.
//
// flags runs with the scenario's hook (with xdp, egress goes on TC on the
// same veth); syn runs beside it on TC (a second XDP program cannot go on
// the same interface), netlink TC in the tc-netlink scenario.
func TestDirectionBothCountsSYNACKs(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	const n = 12
	for _, sc := range packetScenarios {
		t.Run(sc.String(), func(t *testing.T) {
			t.Parallel()
			p := testnet.NewPair(t)
			srv := p.B.Listen(t, sc.family, 0)
			flags := p.B.StartTcplens(t, "flags", "-i", p.B.Link, "-o", "json", "--hook", sc.hook, "--direction", "both")
			synHook := "tc"
			if sc.hook == "tc-netlink" {
				synHook = sc.hook
			}
			syn := p.B.StartTcplens(t, "syn", "-i", p.B.Link, "-o", "json", "--hook", synHook, "--direction", "both", "--top", "0")

			dump := startTcpdump(t, p.B)

			beforeA, beforeB := snmp(t, p.A), snmp(t, p.B)
			testnet.CloseConns(t, p.A.OpenConns(t, srv.Addr, n))
			// B leaves LAST_ACK when A's last ACK has arrived: by then B has
			// sent all it will send, and A's last packet passed the hook.
			testnet.WaitFor(t, 5*time.Second, "B's connections closed", func() bool {
				return p.B.CountSockets(testnet.StateLastAck) == 0
			})
			afterA, afterB := snmp(t, p.A), snmp(t, p.B)
			dump.stop(t, p.B, segmentsSent(t, beforeA, afterA)+segmentsSent(t, beforeB, afterB))
			synAcks := snmpDelta(t, beforeB, afterB, "Tcp:PassiveOpens") + snmpDelta(t, beforeB, afterB, "TcpExt:TCPSynRetrans")
			sentB := segmentsSent(t, beforeB, afterB)
			sentA, synsA := segmentsSent(t, beforeA, afterA), synsSent(t, beforeA, afterA)
			if synAcks < n {
				t.Fatalf("B counts %d passive opens and SYN-ACK retransmissions for %d connections", synAcks, n)
			}

			res := flags.Stop()
			if res.ExitCode != 0 {
				t.Fatalf("tcplens flags exited with %d; stderr: %s", res.ExitCode, res.Stderr)
			}
			out, in := dirSummary(t, res, p.B.Link, "out"), dirSummary(t, res, p.B.Link, "in")
			if hook := out.String(t, "hook"); !strings.HasPrefix(hook, "tc/") || (sc.hook == "tc-netlink" && hook != "tc/netlink") {
				t.Errorf("egress hook %q, want tc/... (tc/netlink with --hook tc-netlink)", hook)
			}
			if hook := in.String(t, "hook"); !strings.HasPrefix(hook, hookLabelPrefix(sc.hook)) {
				t.Errorf("ingress hook %q, want %s...", hook, hookLabelPrefix(sc.hook))
			}
			// A reset is rare here but happens under load (a late segment
			// for a connection already gone): each namespace counts those it
			// sent, and one answering a segment without ACK carries none.
			rstA, rstB := snmpDelta(t, beforeA, afterA, "Tcp:OutRsts"), snmpDelta(t, beforeB, afterB, "Tcp:OutRsts")
			checkCounts(t, out, map[string]uint64{
				"tcp_packets": sentB, "flags.syn": synAcks, "flags.rst": rstB,
				"anomalies.malformed": 0, "dropped": 0,
			})
			checkRange(t, out, "flags.ack", sentB-rstB, sentB)
			checkRange(t, out, "flags.fin", n, n+snmpDelta(t, beforeB, afterB, "Tcp:RetransSegs"))
			// Every flag, against tcpdump's view of what B sent: no segment
			// here is large enough for GSO, so its packets are segments.
			checkCounts(t, out, dump.flagCounts(t, p.B, p.B.Addr(sc.family)))
			checkCounts(t, in, map[string]uint64{"tcp_packets": sentA, "flags.syn": synsA, "flags.rst": rstA})
			checkRange(t, in, "flags.ack", sentA-synsA-rstA, sentA-synsA)

			sres := syn.Stop()
			if sres.ExitCode != 0 {
				t.Fatalf("tcplens syn exited with %d; stderr: %s", sres.ExitCode, sres.Stderr)
			}
			sum := sres.Summary(t, "")
			checkCounts(t, sum, map[string]uint64{
				"syn": synsA, "syn_ack": 0, "attributed": synsA,
				"out.syn": 0, "out.syn_ack": synAcks,
			})
			var inSYN, outSYNAck uint64
			for _, r := range sres.Records(t) {
				if r.Type() != "syn_interval" {
					continue
				}
				switch r.String(t, "direction") {
				case "in":
					inSYN += r.Uint(t, "syn")
				case "out":
					outSYNAck += r.Uint(t, "syn_ack")
				default:
					t.Errorf("syn_interval with direction %q", r.String(t, "direction"))
				}
			}
			if inSYN != synsA || outSYNAck != synAcks {
				t.Errorf("syn_interval lines: %d SYNs in, %d SYN-ACKs out; want %d and %d", inSYN, outSYNAck, synsA, synAcks)
			}
		})
	}
}

// TestDirectionOutCountsSegmentsOfBulkTransfer watches A's egress (only)
// while A sends a bounded bulk transfer to B. TCP hands the egress hook
// TSO/GSO skbs of up to 64 KB, so the program must count the segments
// each becomes (gso_segs): tcp_packets is every segment A sent, from A's
// own counters, and nothing is counted as received.
func TestDirectionOutCountsSegmentsOfBulkTransfer(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	const size = 8 << 20
	for _, sc := range packetScenarios {
		if sc.hook == "xdp" {
			continue // egress is TC whatever the hook; tc and tc-netlink cover both ways
		}
		t.Run(sc.String(), func(t *testing.T) {
			t.Parallel()
			p := testnet.NewPair(t)
			srv := p.B.Listen(t, sc.family, 0)
			tl := p.A.StartTcplens(t, "flags", "-i", p.A.Link, "-o", "json", "--hook", sc.hook, "--direction", "out")

			before := snmp(t, p.A)
			sentBytes := p.A.Bulk(t, srv.Addr, size, 10*time.Second)
			testnet.WaitFor(t, 5*time.Second, "B's connection closed", func() bool {
				return p.B.CountSockets(testnet.StateLastAck) == 0
			})
			after := snmp(t, p.A)
			sent, syns := segmentsSent(t, before, after), synsSent(t, before, after)
			res := tl.Stop()
			if res.ExitCode != 0 {
				t.Fatalf("tcplens exited with %d; stderr: %s", res.ExitCode, res.Stderr)
			}
			for _, r := range res.Records(t) {
				if d := r.String(t, "direction"); d != "out" {
					t.Fatalf("a %s record with --direction out: %v", d, r)
				}
			}
			sum := res.Summary(t, p.A.Link)
			t.Logf("%d bytes in %d segments; tcplens: %d TCP packets out", sentBytes, sent, sum.Uint(t, "tcp_packets"))
			checkCounts(t, sum, map[string]uint64{
				"tcp_packets": sent, "flags.syn": syns, "flags.ack": sent - syns,
				"flags.rst": 0, "dropped": 0, "anomalies.malformed": 0,
			})
			checkRange(t, sum, "flags.fin", 1, 1+snmpDelta(t, before, after, "Tcp:RetransSegs"))
			if srv.Received() != sentBytes {
				t.Errorf("server received %d bytes, A sent %d", srv.Received(), sentBytes)
			}
		})
	}
}

// egressAttached says whether att has exactly one program on the veth's
// egress, a tcx link or a netlink TC filter.
func egressAttached(att testnet.Attachments) bool {
	n := len(att.TCXEgress)
	for _, f := range att.TCFilters {
		if f.Egress {
			n++
		}
	}
	return n == 1
}

// TestEgressLifecycle: with --direction both, each hook puts one program
// on ingress and one on egress (egress always TC; tcx where the kernel has
// it, from BPF_PROG_QUERY); a clean exit leaves nothing; a SIGKILL leaves
// nothing where both went through bpf_link, and where netlink TC filters
// stay behind (6.1, or --hook tc-netlink) doctor warns about each and the
// next run removes them all.
func TestEgressLifecycle(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	for _, hook := range []string{"tc", "xdp", "tc-netlink"} {
		for _, cmd := range []string{"flags", "syn"} {
			t.Run(hook+"/"+cmd, func(t *testing.T) {
				t.Parallel()
				p := testnet.NewPair(t)
				args := []string{cmd, "-i", p.B.Link, "-o", "json", "--hook", hook, "--direction", "both"}
				res := p.B.RunTcplens(t, append(args, "--duration", "300ms")...)
				if res.ExitCode != 0 {
					t.Fatalf("--duration 300ms: exit code %d; stderr: %s", res.ExitCode, res.Stderr)
				}
				if att := p.B.Attachments(t); !att.Empty() {
					t.Fatalf("after a clean exit: %v", att)
				}

				tl := p.B.StartTcplens(t, args...)
				att := p.B.Attachments(t)
				if !egressAttached(att) {
					t.Fatalf("--direction both --hook %s: %v, want one program on egress", hook, att)
				}
				ingress := len(att.TCXIngress)
				for _, f := range att.TCFilters {
					if !f.Egress {
						ingress++
					}
				}
				if hook == "xdp" && (att.XDP == "" || ingress != 0) || hook != "xdp" && (att.XDP != "" || ingress != 1) {
					t.Fatalf("--direction both --hook %s: %v, want ingress on %s only", hook, att, hook)
				}
				if res := tl.Kill(); res.ExitCode != -1 {
					t.Fatalf("tcplens exit code %d after SIGKILL, want death by signal", res.ExitCode)
				}
				if len(att.TCFilters) == 0 {
					testnet.WaitFor(t, 5*time.Second, "nothing attached after SIGKILL", func() bool {
						return p.B.Attachments(t).Empty()
					})
					return
				}
				t.Logf("netlink TC (no tcx, or asked for): a killed run leaves %v", att.TCFilters)
				left := p.B.Attachments(t).TCFilters
				if len(left) != len(att.TCFilters) {
					t.Fatalf("after SIGKILL: filters %v, want the killed run's %v", left, att.TCFilters)
				}
				doc := p.B.RunTcplens(t, "doctor", "-o", "json")
				for _, rec := range doc.Records(t) {
					if rec.Type() == "check" && rec.String(t, "name") == "stale tcplens TC filters" {
						d := rec.String(t, "detail")
						for _, f := range left {
							dir := "ingress"
							if f.Egress {
								dir = "egress"
							}
							if !strings.Contains(d, p.B.Link+" "+dir) {
								t.Errorf("doctor's stale filter check does not name %s %s: %s", p.B.Link, dir, d)
							}
						}
					}
				}
				res = p.B.RunTcplens(t, "flags", "-i", p.B.Link, "-o", "json", "--hook", "xdp", "--duration", "300ms")
				if res.ExitCode != 0 {
					t.Fatalf("restart: exit code %d; stderr: %s", res.ExitCode, res.Stderr)
				}
				if got := strings.Count(res.Stderr, "removed a stale TC filter"); got != len(left) {
					t.Errorf("restart removed %d stale filters, want %d:\n%s", got, len(left), res.Stderr)
				}
				if att := p.B.Attachments(t); !att.Empty() {
					t.Errorf("after the restarted run ended: %v, want nothing", att)
				}
			})
		}
	}
}

// TestEgressInterfaceRemoved: with --direction both, the removal of the
// veth ends the run with exit 1 as for ingress; with --wait-interface the
// run attaches both directions to the new veth and counts B's segments
// sent there (B's own counters; B sends TCP only after the link is back).
func TestEgressInterfaceRemoved(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	const n = 6
	for _, sc := range []scenario{{"tc", testnet.IPv4}, {"xdp", testnet.IPv6}, {"tc-netlink", testnet.IPv4}} {
		t.Run(sc.String(), func(t *testing.T) {
			t.Parallel()
			p := testnet.NewPair(t)
			tl := p.B.StartTcplens(t, "flags", "-i", p.B.Link, "-o", "json", "--hook", sc.hook, "--direction", "both", "--interval", "100ms")
			p.DeleteLink(t)
			if res := tl.Wait(10 * time.Second); res.ExitCode != 1 || !strings.Contains(res.Stderr, "was removed") {
				t.Fatalf("exit code %d after the interface was deleted, want 1 and why; stderr: %s", res.ExitCode, res.Stderr)
			}
			p.RecreateLink(t)

			tl = p.B.StartTcplens(t, "flags", "-i", p.B.Link, "-o", "json", "--hook", sc.hook, "--direction", "both", "--wait-interface", "--interval", "100ms")
			p.DeleteLink(t)
			testnet.WaitFor(t, 5*time.Second, "tcplens waiting for the interface", func() bool {
				return strings.Contains(tl.Output().Stderr, "waiting for it to come back")
			})
			p.RecreateLink(t)
			testnet.WaitFor(t, 5*time.Second, "tcplens attached again", func() bool {
				return strings.Contains(tl.Output().Stderr, "interface "+p.B.Link+" is back")
			})
			if att := p.B.Attachments(t); !egressAttached(att) {
				t.Fatalf("new %s: %v, want one program on egress", p.B.Link, att)
			}
			before := snmp(t, p.B)
			srv := p.B.Listen(t, sc.family, 0)
			testnet.CloseConns(t, p.A.OpenConns(t, srv.Addr, n))
			testnet.WaitFor(t, 5*time.Second, "B's connections closed", func() bool {
				return p.B.CountSockets(testnet.StateLastAck) == 0
			})
			after := snmp(t, p.B)
			res := tl.Stop()
			if res.ExitCode != 0 {
				t.Fatalf("exit code %d; stderr: %s", res.ExitCode, res.Stderr)
			}
			sent := segmentsSent(t, before, after)
			synAcks := snmpDelta(t, before, after, "Tcp:PassiveOpens") + snmpDelta(t, before, after, "TcpExt:TCPSynRetrans")
			checkCounts(t, dirSummary(t, res, p.B.Link, "out"), map[string]uint64{"tcp_packets": sent, "flags.syn": synAcks})
			if att := p.B.Attachments(t); !att.Empty() {
				t.Errorf("after a clean exit: %v", att)
			}
		})
	}
}

// TestDirectionBadInput: a bad --direction is bad usage (exit 2, one line,
// nothing attached).
func TestDirectionBadInput(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	p := testnet.NewPair(t)
	for _, cmd := range []string{"flags", "syn"} {
		res := p.B.RunTcplens(t, cmd, "-i", p.B.Link, "--direction", "sideways")
		if res.ExitCode != 2 || strings.Count(strings.TrimSuffix(res.Stderr, "\n"), "\n") != 0 || !strings.Contains(res.Stderr, "--direction") {
			t.Errorf("%s --direction sideways: exit code %d, want 2 and one line naming --direction; stderr: %s", cmd, res.ExitCode, res.Stderr)
		}
		if att := p.B.Attachments(t); !att.Empty() {
			t.Errorf("after bad input: %v", att)
		}
	}
}

// TestDoctorTCEgressTruth: doctor's "TC egress" check agrees with what
// --direction out does on this kernel: where it says ok, flags attaches
// egress with the mechanism it named (tcx, or netlink TC before 6.6).
func TestDoctorTCEgressTruth(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	p := testnet.NewPair(t)
	doc := p.B.RunTcplens(t, "doctor", "-o", "json")
	var check testnet.Record
	for _, rec := range doc.Records(t) {
		if rec.Type() == "check" && rec.String(t, "name") == "TC egress" {
			check = rec
		}
	}
	if check == nil {
		t.Fatalf("doctor has no TC egress check; stdout:\n%s", doc.Stdout)
	}
	res := p.B.RunTcplens(t, "flags", "-i", p.B.Link, "-o", "json", "--direction", "out", "--duration", "200ms")
	if check.String(t, "status") != "ok" {
		if res.ExitCode == 0 {
			t.Errorf("doctor says no TC egress (%v) but --direction out ran", check)
		}
		return
	}
	if res.ExitCode != 0 {
		t.Fatalf("doctor says TC egress works (%v) but --direction out exited %d: %s", check, res.ExitCode, res.Stderr)
	}
	want := "tc/tcx"
	if strings.HasPrefix(check.String(t, "detail"), "netlink") {
		want = "tc/netlink"
	}
	if got := dirSummary(t, res, p.B.Link, "out").String(t, "hook"); got != want {
		t.Errorf("egress attached with %s, doctor said %q", got, check.String(t, "detail"))
	}
}

// TestEgressUnderPacketCapabilities: egress needs no capability beyond the
// packet path's CAP_BPF + CAP_NET_ADMIN + CAP_PERFMON, on tcx and on
// netlink TC alike.
func TestEgressUnderPacketCapabilities(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		if os.Getenv("TCPLENS_REQUIRE_PRIVILEGED") == "1" {
			t.Fatalf("setpriv (util-linux) is needed: %v", err)
		}
		t.Skipf("setpriv (util-linux) is needed: %v", err)
	}
	p := testnet.NewPair(t)
	caps := "+bpf,+net_admin,+perfmon"
	for _, hook := range []string{"tc", "tc-netlink"} {
		cmd := p.B.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
			"--inh-caps="+caps, "--ambient-caps="+caps,
			testnet.Tcplens(t), "flags", "-i", p.B.Link, "-o", "json", "--hook", hook, "--direction", "both", "--duration", "300ms")
		out, err := cmd.Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Fatalf("flags --hook %s --direction both as nobody with %s: %v; stderr: %s", hook, caps, err, stderr)
		}
		res := testnet.Result{Stdout: string(out)}
		if h := dirSummary(t, res, p.B.Link, "out").String(t, "hook"); !strings.HasPrefix(h, "tc/") {
			t.Errorf("--hook %s: egress hook %q, want tc/...", hook, h)
		}
		if att := p.B.Attachments(t); !att.Empty() {
			t.Errorf("--hook %s: after the run: %v", hook, att)
		}
	}
}
