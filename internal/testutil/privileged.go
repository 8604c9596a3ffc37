// Package testutil holds small helpers shared by tcplens's tests.
package testutil

import (
	"os"
	"testing"

	"github.com/cilium/ebpf/rlimit"
)

// RequirePrivileged skips t when the process cannot load BPF programs or
// make network namespaces, unless TCPLENS_REQUIRE_PRIVILEGED=1 (as in CI),
// where the same condition fails the test instead of hiding it.
func RequirePrivileged(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		if Required() {
			t.Fatal("TCPLENS_REQUIRE_PRIVILEGED=1 but not running as root")
		}
		t.Skip("needs root (BPF programs, network namespaces); run as root or set TCPLENS_REQUIRE_PRIVILEGED=1 to make this a failure")
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Fatalf("remove memlock limit: %v", err)
	}
}

// Required reports whether TCPLENS_REQUIRE_PRIVILEGED=1: then nothing a
// test needs from the machine may be missing.
func Required() bool { return os.Getenv("TCPLENS_REQUIRE_PRIVILEGED") == "1" }

// SkipUnlessRequired skips t with reason, or fails it when
// TCPLENS_REQUIRE_PRIVILEGED=1, where a missing tool or kernel feature must
// not pass silently.
func SkipUnlessRequired(t testing.TB, reason string) {
	t.Helper()
	if Required() {
		t.Fatalf("TCPLENS_REQUIRE_PRIVILEGED=1 but %s", reason)
	}
	t.Skip(reason)
}
