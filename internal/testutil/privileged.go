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
		if os.Getenv("TCPLENS_REQUIRE_PRIVILEGED") == "1" {
			t.Fatal("TCPLENS_REQUIRE_PRIVILEGED=1 but not running as root")
		}
		t.Skip("needs root (BPF programs, network namespaces); run as root or set TCPLENS_REQUIRE_PRIVILEGED=1 to make this a failure")
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Fatalf("remove memlock limit: %v", err)
	}
}
