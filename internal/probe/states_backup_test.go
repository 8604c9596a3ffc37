package probe

import (
	"encoding/binary"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/tcplens/tcplens/internal/testutil"
)

// TestStatesBackupHandlesOnlySkippedRuns drives the claim protocol of
// bpf/states.c with BPF_PROG_TEST_RUN: set_state_backup must handle (and
// count as recovered) an event that set_state did not run for, and leave
// alone one that set_state ran for. The oracle is the recovered counter
// in the `lost` array against the sequence of runs the test made. The
// socket pointer is not a socket: its CO-RE reads fail to 0, so neither
// program goes past the protocol check, and the claims are all there is.
func TestStatesBackupHandlesOnlySkippedRuns(t *testing.T) {
	testutil.RequirePrivileged(t)
	// Loaded, not attached: the host's own state changes must not run
	// these programs between the test's runs.
	spec, err := StatesObject.Spec()
	if err != nil {
		t.Fatal(err)
	}
	// Only the two programs under test: the others include optional ones
	// (sock_recv_length) that older kernels (6.1) cannot load.
	for name := range spec.Programs {
		if name != "set_state" && name != "set_state_backup" {
			delete(spec.Programs, name)
		}
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		t.Fatal(err)
	}
	defer coll.Close()
	st := &SockTracer{Lost: coll.Maps["lost"], Programs: coll.Programs, backups: map[string]bool{}}
	for _, p := range StatesObject.programs {
		if p.backup {
			st.backups[p.prog] = true
		}
	}
	main, backup := st.Programs["set_state"], st.Programs["set_state_backup"]
	if main == nil || backup == nil {
		t.Fatalf("programs %v: want set_state and set_state_backup", st.Programs)
	}
	if !st.backups["set_state_backup"] || st.backups["set_state"] {
		t.Fatalf("backups %v: want set_state_backup only", st.backups)
	}
	args := func(sk uint64, oldState, newState uint64) []byte {
		b := make([]byte, 24)
		binary.LittleEndian.PutUint64(b, sk)
		binary.LittleEndian.PutUint64(b[8:], oldState)
		binary.LittleEndian.PutUint64(b[16:], newState)
		return b
	}
	run := func(p *ebpf.Program, ctx []byte) {
		t.Helper()
		// Claims are per CPU: every run on CPU 0.
		if _, err := p.Run(&ebpf.RunOptions{Context: ctx, Flags: unix.BPF_F_TEST_RUN_ON_CPU, CPU: 0}); err != nil {
			testutil.SkipUnlessRequired(t, "BPF_PROG_TEST_RUN of a raw tracepoint program: "+err.Error())
			t.Fatal(err)
		}
	}
	recovered := func() uint64 {
		t.Helper()
		var perCPU []uint64
		if err := st.Lost.Lookup(uint32(lostRecovered), &perCPU); err != nil {
			t.Fatal(err)
		}
		var n uint64
		for _, v := range perCPU {
			n += v
		}
		return n
	}
	const sk = 0xffff888000001000
	a := args(sk, 1, 4) // ESTABLISHED -> FIN_WAIT1
	b := args(sk, 4, 5) // FIN_WAIT1 -> FIN_WAIT2: another event of the same socket

	// Both ran: nothing recovered.
	run(main, a)
	run(backup, a)
	if n := recovered(); n != 0 {
		t.Fatalf("after set_state and its backup for one event: %d recovered, want 0", n)
	}
	// set_state skipped (only the backup runs): recovered.
	run(backup, b)
	if n := recovered(); n != 1 {
		t.Fatalf("after the backup alone: %d recovered, want 1", n)
	}
	// The first event's claim was used up: the same event again, backup
	// alone, is a new skipped run.
	run(backup, a)
	if n := recovered(); n != 2 {
		t.Fatalf("after the backup alone for a used claim: %d recovered, want 2", n)
	}
	// Nested: set_state claims a, an event b arrives whose set_state run
	// was skipped, its backup runs, then a's backup: one recovery (b).
	run(main, a)
	run(backup, b)
	run(backup, a)
	if n := recovered(); n != 3 {
		t.Fatalf("after a nested skipped event: %d recovered, want 3", n)
	}
	// No run was skipped by the kernel here: misses 0, and what the
	// backup recovered never makes the loss negative.
	if m, err := st.RecursionMisses(); err != nil || m != 0 {
		t.Fatalf("RecursionMisses = %d, %v; want 0", m, err)
	}
}
