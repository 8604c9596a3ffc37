package integration

import (
	"errors"
	"fmt"
	"os"
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

// TestKilledLeavesNothingAttached SIGKILLs tcplens: it attaches through
// bpf_link only, so the kernel detaches everything when the process's
// file descriptors go, without any cleanup code running.
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
				case hook == "tc" && (len(att.TCXIngress) != 1 || att.XDP != ""):
					t.Fatalf("with --hook tc: %v, want one tcx ingress program", att)
				case hook == "xdp" && (att.XDP == "" || len(att.TCXIngress) != 0):
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
	for _, hook := range []string{"tc", "xdp"} {
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
