// Package kernels holds the kernel-matrix harness (run.sh, boot.sh,
// guest.sh, verdict.sh); these tests run guest.sh with stand-in test
// binaries and read its log with verdict.sh, as run.sh does, without qemu.
package kernels

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeTestBinary acts as a Go test binary run with -test.v: it runs the
// tests listed in its package directory's "tests" file ("NAME MODE" per
// line) that match -test.run. MODE pass, skip, fail, panic, or flaky:
// fails the first time, passes after.
const fakeTestBinary = `#!/bin/sh
run=. prev=
for a; do [ "$prev" = -test.run ] && run=$a; prev=$a; done
rc=0
while read -r name mode; do
	echo "$name" | grep -Eq "$run" || continue
	echo "=== RUN   $name"
	case $mode in
	pass) echo "--- PASS: $name (0.00s)" ;;
	skip) echo "--- SKIP: $name (0.00s)" ;;
	fail) echo "    x_test.go:1: $name broke"; echo "--- FAIL: $name (0.00s)"; rc=1 ;;
	flaky)
		if [ -e "$name.failed" ]; then
			echo "    x_test.go:2: $name passed"; echo "--- PASS: $name (0.00s)"
		else
			touch "$name.failed"; echo "    x_test.go:1: $name flaked"; echo "--- FAIL: $name (0.00s)"; rc=1
		fi ;;
	panic) echo "--- FAIL: $name (0.00s)"; echo "panic: $name boom"; exit 2 ;;
	esac
done <tests
if [ $rc = 0 ]; then echo PASS; else echo FAIL; fi
exit $rc
`

type verdict struct {
	passed, failed, skipped int
	failing, flaky, broken  string
}

// runGuest runs guest.sh over packages (name -> its tests file) and returns
// its log and analyse's reading of it.
func runGuest(t *testing.T, emulation string, packages map[string]string) (string, verdict) {
	t.Helper()
	root := t.TempDir()
	build := filepath.Join(root, "build")
	must(t, os.MkdirAll(build, 0o755))
	writeExec(t, filepath.Join(build, "tcplens"), "#!/bin/sh\necho 'doctor: fine'\n")
	writeExec(t, filepath.Join(build, "tphold"), "#!/bin/sh\necho \"tphold: holding $*\"\n")
	writeExec(t, filepath.Join(build, "pkg.test"), fakeTestBinary)
	var list strings.Builder
	for name, tests := range packages {
		dir := filepath.Join(root, name)
		must(t, os.MkdirAll(dir, 0o755))
		must(t, os.WriteFile(filepath.Join(dir, "tests"), []byte(tests), 0o644))
		fmt.Fprintf(&list, "pkg.test %s\n", dir)
	}
	must(t, os.WriteFile(filepath.Join(build, "packages"), []byte(list.String()), 0o644))

	guest := exec.Command("sh", "guest.sh", build)
	guest.Env = append(os.Environ(), "TCPLENS_EMULATION="+emulation, "TCPLENS_KERNELS_TESTARGS=")
	out, err := guest.CombinedOutput()
	if err != nil {
		t.Fatalf("guest.sh: %v\n%s", err, out)
	}
	log := filepath.Join(root, "guest.log")
	must(t, os.WriteFile(log, out, 0o644))

	read := exec.Command("bash", "-c", `set -euo pipefail; . ./verdict.sh; analyse "$1" "$2"
		printf '%s\n' "$passed" "$failed" "$skipped" "$failing" "$flaky" "$broken"`, "-", log, root)
	var stderr strings.Builder
	read.Stderr = &stderr
	vout, err := read.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("analyse: %v; stdout %q; stderr %q", err, vout, stderr.String())
	}
	var v verdict
	f := strings.Split(string(vout), "\n")
	if len(f) < 6 {
		t.Fatalf("analyse printed %q", vout)
	}
	fmt.Sscan(f[0], &v.passed)
	fmt.Sscan(f[1], &v.failed)
	fmt.Sscan(f[2], &v.skipped)
	v.failing, v.flaky, v.broken = strings.TrimSpace(f[3]), strings.TrimSpace(f[4]), strings.TrimSpace(f[5])
	return string(out), v
}

func testOutput(t *testing.T, log, test, which string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "log")
	must(t, os.WriteFile(f, []byte(log), 0o644))
	out, err := exec.Command("bash", "-c", `. ./verdict.sh; test_output "$1" "$2" "$3"`, "-", f, test, which).CombinedOutput()
	if err != nil {
		t.Fatalf("test_output: %v\n%s", err, out)
	}
	return string(out)
}

func TestTCGRetriesFailedTestsOnce(t *testing.T) {
	log, v := runGuest(t, "tcg", map[string]string{
		"flakes": "TestOK pass\nTestFlaky flaky\nTestSkip skip\n",
		"breaks": "TestBroke fail\nTestFlaky2 flaky\nTestFine pass\n",
	})
	want := verdict{passed: 4, failed: 1, skipped: 1, failing: "TestBroke", flaky: "TestFlaky TestFlaky2", broken: "breaks"}
	if v != want {
		t.Errorf("verdict %+v, want %+v\nlog:\n%s", v, want, log)
	}
	// Only the failed tests run again.
	for test, runs := range map[string]int{"TestOK": 1, "TestFine": 1, "TestFlaky": 2, "TestBroke": 2} {
		if n := strings.Count(log, "=== RUN   "+test+"\n"); n != runs {
			t.Errorf("%s ran %d times, want %d", test, n, runs)
		}
	}
	if out := testOutput(t, log, "TestFlaky", "first"); !strings.Contains(out, "TestFlaky flaked") || strings.Contains(out, "TestFlaky passed") {
		t.Errorf("a flaky test's first run's output is:\n%s", out)
	}
	if out := testOutput(t, log, "TestBroke", ""); strings.Count(out, "TestBroke broke") != 2 {
		t.Errorf("a failing test's output, both runs, is:\n%s", out)
	}
}

func TestHardwareKernelsAreNotRetried(t *testing.T) {
	log, v := runGuest(t, "", map[string]string{"flakes": "TestOK pass\nTestFlaky flaky\n"})
	want := verdict{passed: 1, failed: 1, failing: "TestFlaky", broken: "flakes"}
	if v != want || strings.Contains(log, "retry") {
		t.Errorf("verdict %+v, want %+v\nlog:\n%s", v, want, log)
	}
}

func TestPanicsAreNotRetried(t *testing.T) {
	log, v := runGuest(t, "tcg", map[string]string{"panics": "TestFlaky flaky\nTestBoom panic\n"})
	want := verdict{failed: 2, failing: "TestBoom TestFlaky", broken: "panics"}
	if v != want || strings.Contains(log, "retry") {
		t.Errorf("verdict %+v, want %+v\nlog:\n%s", v, want, log)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func writeExec(t *testing.T, path, text string) {
	t.Helper()
	must(t, os.WriteFile(path, []byte(text), 0o755))
}
