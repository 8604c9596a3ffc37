package integration

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/tcplens/tcplens/internal/bpfobj"
	"github.com/tcplens/tcplens/internal/testnet"
	"github.com/tcplens/tcplens/internal/testutil"
)

// TestKilledLeavesNothingAttached SIGKILLs tcplens: tcx and XDP attach
// through bpf_link, so the kernel detaches everything when the process's
// file descriptors go, without any cleanup code running. On a kernel
// without tcx, --hook tc means netlink TC, which a killed process does
// leave behind: TestKilledNetlinkFilterIsRemovedAtRestart covers that.
func TestKilledLeavesNothingAttached(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	for _, hook := range []string{"tc", "xdp"} {
		for _, cmd := range []string{"flags", "syn"} {
			t.Run(hook+"/"+cmd, func(t *testing.T) {
				t.Parallel()
				p := testnet.NewPair(t)
				tl := p.B.StartTcplens(t, cmd, "-i", p.B.Link, "-o", "json", "--hook", hook, "--drop-syn-port", "9")
				att := p.B.Attachments(t)
				switch {
				case hook == "tc" && !att.TCX:
					if len(att.TCFilters) != 1 || att.XDP != "" {
						t.Fatalf("with --hook tc and no tcx: %v, want one netlink TC filter", att)
					}
					t.Logf("no tcx on this kernel: --hook tc is netlink TC; a killed run leaves its filter (%v)", att.TCFilters)
					tl.Kill()
					checkStaleFilterRemoved(t, p, att.TCFilters[0])
					return
				case hook == "tc" && (len(att.TCXIngress) != 1 || att.XDP != "" || len(att.TCFilters) != 0):
					t.Fatalf("with --hook tc: %v, want one tcx ingress program", att)
				case hook == "xdp" && (att.XDP == "" || len(att.TCXIngress) != 0 || len(att.TCFilters) != 0):
					t.Fatalf("with --hook xdp: %v, want XDP only", att)
				}
				if res := tl.Kill(); res.ExitCode != -1 {
					t.Fatalf("tcplens exit code %d after SIGKILL, want death by signal", res.ExitCode)
				}
				// Links are released as the dead process's files close,
				// which may finish a moment after wait returns.
				var last testnet.Attachments
				testnet.WaitFor(t, 5*time.Second, "nothing attached after SIGKILL", func() bool {
					last = p.B.Attachments(t)
					return last.Empty()
				})
				if out := p.B.Run(t, "ip", "link", "show", "dev", p.B.Link); strings.Contains(out, "xdp") {
					t.Errorf("ip link still shows XDP: %s", out)
				}
			})
		}
	}
}

// TestKilledNetlinkFilterIsRemovedAtRestart: a netlink TC filter is no
// bpf_link and outlives a SIGKILLed tcplens. doctor must report it, and
// the next run on that interface removes it (and the clsact qdisc that
// held only it), then leaves nothing when it ends itself.
func TestKilledNetlinkFilterIsRemovedAtRestart(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	for _, cmd := range []string{"flags", "syn"} {
		t.Run(cmd, func(t *testing.T) {
			t.Parallel()
			p := testnet.NewPair(t)
			tl := p.B.StartTcplens(t, cmd, "-i", p.B.Link, "-o", "json", "--hook", "tc-netlink")
			att := p.B.Attachments(t)
			if len(att.TCFilters) != 1 || len(att.TCXIngress) != 0 || att.XDP != "" {
				t.Fatalf("with --hook tc-netlink: %v, want one netlink TC filter only", att)
			}
			f := att.TCFilters[0]
			if want := fmt.Sprintf("tcplens pid=%d", tl.PID()); f.Name != want || f.Handle != uint32(tl.PID()) || f.Egress {
				t.Errorf("filter %v, want ingress, name %q, handle the PID %#x", f, want, tl.PID())
			}
			if res := tl.Kill(); res.ExitCode != -1 {
				t.Fatalf("tcplens exit code %d after SIGKILL, want death by signal", res.ExitCode)
			}
			checkStaleFilterRemoved(t, p, f)
		})
	}
}

// checkStaleFilterRemoved: after a SIGKILL, filter f is still there; doctor
// warns about it; a new run removes it and says so; a clean exit of that
// run leaves nothing.
func checkStaleFilterRemoved(t *testing.T, p *testnet.Pair, f testnet.TCFilter) {
	t.Helper()
	if att := p.B.Attachments(t); len(att.TCFilters) != 1 || att.TCFilters[0] != f {
		t.Fatalf("after SIGKILL: %v, want the killed run's filter %v still there", att, f)
	}
	doc := p.B.RunTcplens(t, "doctor", "-o", "json")
	var warned bool
	for _, rec := range doc.Records(t) {
		if rec.Type() == "check" && rec.String(t, "name") == "stale tcplens TC filters" {
			warned = rec.String(t, "status") == "warning" &&
				strings.Contains(rec.String(t, "detail"), fmt.Sprintf("handle %#x", f.Handle)) &&
				strings.Contains(rec.String(t, "detail"), p.B.Link)
			if !warned {
				t.Errorf("doctor's stale filter check: %v, want a warning naming %s and handle %#x", rec, p.B.Link, f.Handle)
			}
		}
	}
	if !warned {
		t.Errorf("doctor did not warn about the stale filter; stdout:\n%s", doc.Stdout)
	}
	// Restart with XDP: stale filters go whatever the hook.
	res := p.B.RunTcplens(t, "flags", "-i", p.B.Link, "-o", "json", "--hook", "xdp", "--duration", "300ms")
	if res.ExitCode != 0 {
		t.Fatalf("restart: exit code %d; stderr: %s", res.ExitCode, res.Stderr)
	}
	if want := fmt.Sprintf("removed a stale TC filter left by a killed tcplens (pid %d)", f.Handle); !strings.Contains(res.Stderr, want) {
		t.Errorf("restart's stderr does not say %q:\n%s", want, res.Stderr)
	}
	if att := p.B.Attachments(t); !att.Empty() {
		t.Errorf("after the restarted run ended: %v, want nothing", att)
	}
	doc = p.B.RunTcplens(t, "doctor", "-o", "json")
	for _, rec := range doc.Records(t) {
		if rec.Type() == "check" && rec.String(t, "name") == "stale tcplens TC filters" && rec.String(t, "status") == "warning" {
			t.Errorf("doctor still warns after the cleanup: %v", rec)
		}
	}
}

// TestBadInputExitsTwo checks the CLI contract for bad usage: exit code 2,
// one line on stderr, and nothing attached, also to the interface that
// was valid.
func TestBadInputExitsTwo(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	p := testnet.NewPair(t)
	ifc := p.B.Link
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"unknown interface", []string{"flags", "-i", ifc, "-i", "nosuch0", "--hook", "tc"}},
		{"unknown interface syn", []string{"syn", "-i", "nosuch0", "--hook", "xdp"}},
		{"bad duration", []string{"flags", "-i", ifc, "--duration", "soon"}},
		{"negative duration", []string{"syn", "-i", ifc, "--duration", "-1s"}},
		{"bad port", []string{"flags", "-i", ifc, "--drop-syn-port", "70000"}},
		{"port zero", []string{"syn", "-i", ifc, "--drop-syn-port", "0"}},
		{"port not a number", []string{"flags", "-i", ifc, "--drop-syn-port", "http"}},
		{"bad hook", []string{"flags", "-i", ifc, "--hook", "kprobe"}},
		{"unknown interface tc-netlink", []string{"flags", "-i", ifc, "-i", "nosuch0", "--hook", "tc-netlink"}},
		{"bad max tuples", []string{"syn", "-i", ifc, "--max-tuples", "0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := p.B.RunTcplens(t, tc.args...)
			if res.ExitCode != 2 {
				t.Errorf("exit code %d, want 2; stderr: %s", res.ExitCode, res.Stderr)
			}
			if lines := strings.Split(strings.TrimSuffix(res.Stderr, "\n"), "\n"); len(lines) != 1 || lines[0] == "" {
				t.Errorf("stderr has %d lines, want one reason:\n%s", len(lines), res.Stderr)
			}
			if att := p.B.Attachments(t); !att.Empty() {
				t.Errorf("after bad input: %v", att)
			}
		})
	}
}

// TestDurationExitsCleanly: --duration ends the run with exit code 0 and a
// summary, and detaches.
func TestDurationExitsCleanly(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	p := testnet.NewPair(t)
	for _, hook := range []string{"tc", "xdp", "tc-netlink"} {
		res := p.B.RunTcplens(t, "flags", "-i", p.B.Link, "-o", "json", "--hook", hook, "--duration", "300ms")
		if res.ExitCode != 0 {
			t.Fatalf("--hook %s --duration 300ms: exit code %d; stderr: %s", hook, res.ExitCode, res.Stderr)
		}
		res.Summary(t, p.B.Link)
		if att := p.B.Attachments(t); !att.Empty() {
			t.Errorf("--hook %s: after a clean exit: %v", hook, att)
		}
	}
}

// bpfOwned is what one process holds open: program and link IDs, read
// from its file descriptors' fdinfo.
type bpfOwned struct {
	progs map[ebpf.ProgramID]bool
	links map[link.ID]bool
}

func ownedBPF(t *testing.T, pid int) bpfOwned {
	t.Helper()
	o := bpfOwned{progs: map[ebpf.ProgramID]bool{}, links: map[link.ID]bool{}}
	dir := fmt.Sprintf("/proc/%d/fdinfo", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		fields := map[string]uint64{}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32); err == nil {
				fields[k] = n
			}
		}
		if id, ok := fields["link_id"]; ok {
			o.links[link.ID(id)] = true
		} else if id, ok := fields["prog_id"]; ok {
			o.progs[ebpf.ProgramID(id)] = true
		}
	}
	return o
}

// liveBPF lists the kernel's programs (ID to name) and links (ID to
// program ID), the way bpftool does, by walking their IDs. A link being
// torn down meanwhile (other tests run) fails the walk with EAGAIN: then
// it starts over, a bounded number of times.
func liveBPF(t *testing.T) (map[ebpf.ProgramID]string, map[link.ID]ebpf.ProgramID) {
	t.Helper()
	for try := 0; ; try++ {
		progs, links, err := walkBPF()
		if err == nil {
			return progs, links
		}
		again := errors.Is(err, unix.EAGAIN) || strings.Contains(err.Error(), unix.EAGAIN.Error())
		if !again || try == 20 {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func walkBPF() (map[ebpf.ProgramID]string, map[link.ID]ebpf.ProgramID, error) {
	progs := map[ebpf.ProgramID]string{}
	for id := ebpf.ProgramID(0); ; {
		next, err := ebpf.ProgramGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("list programs: %w", err)
		}
		id = next
		p, err := ebpf.NewProgramFromID(id)
		if errors.Is(err, os.ErrNotExist) {
			continue // gone meanwhile
		}
		if err != nil {
			return nil, nil, fmt.Errorf("program %d: %w", id, err)
		}
		if info, err := p.Info(); err == nil {
			progs[id] = info.Name
		}
		p.Close()
	}
	links := map[link.ID]ebpf.ProgramID{}
	it := new(link.Iterator)
	for it.Next() {
		if info, err := it.Link.Info(); err == nil {
			links[it.ID] = info.Program
		}
	}
	if err := it.Err(); err != nil {
		return nil, nil, fmt.Errorf("list links: %w", err)
	}
	return progs, links, nil
}

// programNames are the names of the programs in an embedded object, full
// (as cilium/ebpf reads them from BTF) and as the kernel truncates them to
// 15 bytes.
func programNames(t *testing.T, load func() (*ebpf.CollectionSpec, error)) map[string]bool {
	t.Helper()
	spec, err := load()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for name := range spec.Programs {
		names[name] = true
		names[name[:min(len(name), 15)]] = true
	}
	return names
}

// TestKilledTracepointCommandsLeaveNothingAttached SIGKILLs each
// tracepoint command once it is attached, and lists the kernel's programs
// and links before and after. Other tests (and other tcplens processes)
// run at the same time, so only the programs and links this process held
// open (its fdinfo), which must carry this command's program names, are
// looked for: all of them must be gone once it is dead.
func TestKilledTracepointCommandsLeaveNothingAttached(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	for _, c := range []struct {
		cmd  string
		spec func() (*ebpf.CollectionSpec, error)
	}{
		{"retrans", bpfobj.LoadRetrans},
		{"rtt", bpfobj.LoadRtt},
		{"states", bpfobj.LoadStates},
		{"resets", bpfobj.LoadResets},
		{"drops", bpfobj.LoadDrops},
	} {
		t.Run(c.cmd, func(t *testing.T) {
			t.Parallel()
			names := programNames(t, c.spec)
			ns := testnet.NewPair(t).B
			tl := ns.StartTcplens(t, c.cmd, "-o", "json")
			owned := ownedBPF(t, tl.PID())
			progs, links := liveBPF(t)
			var mine []string
			for id := range owned.progs {
				name, ok := progs[id]
				if !ok {
					t.Errorf("program %d held by tcplens is not in the kernel's list", id)
				}
				if !names[name] {
					t.Errorf("tcplens %s holds program %d %q, not one of its own %v", c.cmd, id, name, names)
				}
				mine = append(mine, name)
			}
			attached := 0
			for id := range owned.links {
				prog, ok := links[id]
				if !ok {
					t.Errorf("link %d held by tcplens is not in the kernel's list", id)
				} else if !owned.progs[prog] {
					t.Errorf("link %d runs program %d, which tcplens does not hold", id, prog)
				}
				attached++
			}
			if len(owned.progs) == 0 || attached == 0 {
				t.Fatalf("tcplens %s holds %d programs and %d links once ready: nothing to test", c.cmd, len(owned.progs), attached)
			}
			t.Logf("%s: programs %v, %d links", c.cmd, mine, attached)

			if res := tl.Kill(); res.ExitCode != -1 {
				t.Fatalf("tcplens exit code %d after SIGKILL, want death by signal", res.ExitCode)
			}
			var left []string
			testnet.WaitFor(t, 5*time.Second, "no program or link of the killed tcplens left", func() bool {
				progs, links := liveBPF(t)
				left = left[:0]
				for id := range owned.progs {
					if _, ok := progs[id]; ok {
						left = append(left, fmt.Sprintf("program %d %s", id, progs[id]))
					}
				}
				for id := range owned.links {
					if _, ok := links[id]; ok {
						left = append(left, fmt.Sprintf("link %d", id))
					}
				}
				return len(left) == 0
			})
		})
	}
}

// TestInterfaceRemovedExitsOne deletes the watched veth under a running
// tcplens: it must say so on stderr, print its summary and exit 1, not go
// on printing zeros.
func TestInterfaceRemovedExitsOne(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	for _, tc := range []struct{ cmd, hook string }{
		{"flags", "tc"}, {"flags", "xdp"}, {"flags", "tc-netlink"}, {"syn", "tc"},
	} {
		t.Run(tc.cmd+"/"+tc.hook, func(t *testing.T) {
			t.Parallel()
			p := testnet.NewPair(t)
			tl := p.B.StartTcplens(t, tc.cmd, "-i", p.B.Link, "-o", "json", "--hook", tc.hook, "--interval", "100ms")
			p.DeleteLink(t)
			res := tl.Wait(10 * time.Second)
			if res.ExitCode != 1 {
				t.Fatalf("exit code %d after the interface was deleted, want 1; stderr: %s", res.ExitCode, res.Stderr)
			}
			if want := "interface " + p.B.Link + " (index "; !strings.Contains(res.Stderr, want) || !strings.Contains(res.Stderr, "was removed") {
				t.Errorf("stderr does not say that %s was removed:\n%s", p.B.Link, res.Stderr)
			}
			res.Summary(t, "")
		})
	}
}

// TestWaitInterfaceResumes: with --wait-interface, tcplens survives the
// deletion of its veth, attaches to the new veth of the same name, and
// counts its traffic. Oracle: A's own counters; A sends TCP only after the
// link is back (and only to B), so everything in B's summary is that.
func TestWaitInterfaceResumes(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	const n = 10
	for _, sc := range []scenario{{"tc", testnet.IPv4}, {"xdp", testnet.IPv6}, {"tc-netlink", testnet.IPv4}} {
		t.Run(sc.String(), func(t *testing.T) {
			t.Parallel()
			p := testnet.NewPair(t)
			tl := p.B.StartTcplens(t, "flags", "-i", p.B.Link, "-o", "json", "--hook", sc.hook, "--wait-interface", "--interval", "100ms")
			before := snmp(t, p.A)
			p.DeleteLink(t)
			testnet.WaitFor(t, 5*time.Second, "tcplens waiting for the interface", func() bool {
				return strings.Contains(tl.Output().Stderr, "waiting for it to come back")
			})
			p.RecreateLink(t)
			testnet.WaitFor(t, 5*time.Second, "tcplens attached again", func() bool {
				return strings.Contains(tl.Output().Stderr, "interface "+p.B.Link+" is back")
			})
			att := p.B.Attachments(t)
			if att.Empty() {
				t.Fatalf("nothing attached to the new %s", p.B.Link)
			}
			srv := p.B.Listen(t, sc.family, 0)
			testnet.CloseConns(t, p.A.OpenConns(t, srv.Addr, n))
			testnet.WaitFor(t, 5*time.Second, "B's connections closed", func() bool {
				return p.B.CountSockets(testnet.StateLastAck) == 0
			})
			after := snmp(t, p.A)
			res := tl.Stop()
			if res.ExitCode != 0 {
				t.Fatalf("exit code %d; stderr: %s", res.ExitCode, res.Stderr)
			}
			sum := res.Summary(t, p.B.Link)
			sent, syns := segmentsSent(t, before, after), synsSent(t, before, after)
			checkCounts(t, sum, map[string]uint64{"tcp_packets": sent, "flags.syn": syns, "flags.ack": sent - syns})
			if srv.Accepted() != n {
				t.Errorf("server accepted %d connections, want %d", srv.Accepted(), n)
			}
			if att := p.B.Attachments(t); !att.Empty() {
				t.Errorf("after a clean exit: %v", att)
			}
		})
	}
}

// TestDoctorPacketCommandsNeedDefaultRoute: without -i, flags and syn
// watch the default route's interface, so in a namespace without a
// default route doctor must not call them ready, and they exit 2 there.
// With a default route, both agree the other way.
func TestDoctorPacketCommandsNeedDefaultRoute(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	p := testnet.NewPair(t)
	ready := func() map[string]bool {
		out := map[string]bool{}
		for _, rec := range p.B.RunTcplens(t, "doctor", "-o", "json").Records(t) {
			if rec.Type() == "command" {
				r, _ := rec["ready"].(bool)
				out[rec.String(t, "command")] = r
			}
		}
		return out
	}
	r := ready()
	for _, cmd := range []string{"flags", "syn"} {
		res := p.B.RunTcplens(t, cmd, "-o", "json", "--duration", "300ms")
		if r[cmd] || res.ExitCode != 2 {
			t.Errorf("no default route: doctor says %s ready=%v; %s exits %d (stderr %q), want not ready and 2",
				cmd, r[cmd], cmd, res.ExitCode, res.Stderr)
		}
	}
	p.B.Run(t, "ip", "route", "add", "default", "via", p.A.IPv4.String(), "dev", p.B.Link)
	r = ready()
	for _, cmd := range []string{"flags", "syn"} {
		res := p.B.RunTcplens(t, cmd, "-o", "json", "--duration", "300ms")
		if !r[cmd] || res.ExitCode != 0 {
			t.Errorf("default route via %s: doctor says %s ready=%v; %s exits %d (stderr %q), want ready and 0",
				p.B.Link, cmd, r[cmd], cmd, res.ExitCode, res.Stderr)
		}
		if cmd == "flags" && res.ExitCode == 0 {
			res.Summary(t, p.B.Link) // the default route's interface
		}
	}
}

// TestTwoNetlinkRunsShareAnInterface: a second tcplens on the same
// interface must take the first one's filter for live (its owner holds
// the program), not for stale, and each removes only its own.
func TestTwoNetlinkRunsShareAnInterface(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	p := testnet.NewPair(t)
	first := p.B.StartTcplens(t, "flags", "-i", p.B.Link, "-o", "json", "--hook", "tc-netlink")
	second := p.B.StartTcplens(t, "syn", "-i", p.B.Link, "-o", "json", "--hook", "tc-netlink")
	if att := p.B.Attachments(t); len(att.TCFilters) != 2 {
		t.Fatalf("two runs: %v, want two netlink TC filters", att)
	}
	if res := second.Stop(); res.ExitCode != 0 || strings.Contains(res.Stderr, "stale") {
		t.Fatalf("second run: exit code %d, stderr: %s", res.ExitCode, res.Stderr)
	}
	att := p.B.Attachments(t)
	if len(att.TCFilters) != 1 || att.TCFilters[0].Handle != uint32(first.PID()) {
		t.Fatalf("after the second run ended: %v, want only the first run's filter (handle %#x)", att, first.PID())
	}
	if res := first.Stop(); res.ExitCode != 0 {
		t.Fatalf("first run: exit code %d, stderr: %s", res.ExitCode, res.Stderr)
	}
	if att := p.B.Attachments(t); !att.Empty() {
		t.Errorf("after both runs ended: %v", att)
	}
}

// TestNetlinkPathUnderPacketCapabilities: netlink TC, the stale-filter
// sweep and the interface watch need no capability beyond the packet
// path's CAP_BPF + CAP_NET_ADMIN + CAP_PERFMON (the watch once entered
// the namespace with setns, which needs CAP_SYS_ADMIN).
func TestNetlinkPathUnderPacketCapabilities(t *testing.T) {
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
	cmd := p.B.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
		"--inh-caps="+caps, "--ambient-caps="+caps,
		testnet.Tcplens(t), "flags", "-i", p.B.Link, "-o", "json", "--hook", "tc-netlink", "--duration", "500ms")
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("flags --hook tc-netlink as nobody with %s: %v; stderr: %s", caps, err, stderr)
	}
	res := testnet.Result{Stdout: string(out)}
	if hook := res.Summary(t, p.B.Link).String(t, "hook"); hook != "tc/netlink" {
		t.Errorf("hook %q, want tc/netlink", hook)
	}
	if att := p.B.Attachments(t); !att.Empty() {
		t.Errorf("after the run: %v", att)
	}
}
