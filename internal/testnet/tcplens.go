package testnet

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var build struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// Tcplens builds cmd/tcplens once per test binary and returns its path.
// Call RemoveBuild from TestMain after the tests to delete it.
//
// TCPLENS_BIN=/path/to/tcplens skips the build and tests that binary
// instead (a release build, or one built from a clean checkout while the
// work tree does not compile).
func Tcplens(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		if bin := os.Getenv("TCPLENS_BIN"); bin != "" {
			build.bin, build.err = filepath.Abs(bin)
			if build.err == nil {
				_, build.err = os.Stat(build.bin)
			}
			return
		}
		root, err := moduleRoot()
		if err != nil {
			build.err = err
			return
		}
		build.dir, build.err = os.MkdirTemp("", "tcplens-test-bin-")
		if build.err != nil {
			return
		}
		build.bin = filepath.Join(build.dir, "tcplens")
		cmd := exec.Command("go", "build", "-o", build.bin, "./cmd/tcplens")
		cmd.Dir = root
		if out, err := runBounded(cmd, 5*time.Minute); err != nil {
			build.err = fmt.Errorf("build tcplens: %v %s", err, out)
		}
	})
	if build.err != nil {
		t.Fatalf("testnet: %v", build.err)
	}
	return build.bin
}

// RemoveBuild deletes the binary Tcplens built, if any.
func RemoveBuild() {
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
}

func moduleRoot() (string, error) {
	out, err := output("go", "env", "GOMOD")
	if err != nil {
		return "", err
	}
	gomod := strings.TrimSpace(out)
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the tcplens module")
	}
	return filepath.Dir(gomod), nil
}

// Result is how a tcplens run ended.
type Result struct {
	ExitCode       int // -1: killed by a signal
	Stdout, Stderr string
}

// Process is tcplens running in a namespace.
type Process struct {
	t          testing.TB
	cmd        *exec.Cmd
	stdout     SyncBuffer
	stderr     SyncBuffer
	done       chan struct{}
	result     Result
	ReadyFile  string
	ReadyLines string // the ready file's content
}

// SyncBuffer is a bytes.Buffer that a child process's output and a test
// may use at once.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// StartTcplens runs `tcplens args... --ready-file F` in the namespace and
// returns once F exists (everything attached). It fails the test if
// tcplens exits first or is not ready within 15 s. The process is killed
// and waited for when the test ends, if it is still running then.
func (ns *NS) StartTcplens(t testing.TB, args ...string) *Process {
	t.Helper()
	bin := Tcplens(t)
	ready := filepath.Join(t.TempDir(), "ready")
	p := &Process{t: t, done: make(chan struct{}), ReadyFile: ready}
	p.cmd = ns.Command(bin, append(args, "--ready-file", ready)...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("testnet: start tcplens: %v", err)
	}
	go p.wait()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	deadline := time.After(15 * time.Second)
	for {
		if b, err := os.ReadFile(ready); err == nil {
			p.ReadyLines = string(b)
			return p
		}
		select {
		case <-p.done:
			t.Fatalf("testnet: tcplens %s exited with %d before it was ready; stderr: %s",
				strings.Join(args, " "), p.result.ExitCode, p.result.Stderr)
		case <-deadline:
			// SIGQUIT first: a Go program prints every goroutine's stack,
			// which says where it hangs.
			p.cmd.Process.Signal(syscall.SIGQUIT)
			select {
			case <-p.done:
			case <-time.After(2 * time.Second):
				p.cmd.Process.Kill()
				<-p.done
			}
			t.Fatalf("testnet: tcplens %s not ready after 15 s; stderr: %s", strings.Join(args, " "), p.result.Stderr)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (p *Process) wait() {
	err := p.cmd.Wait()
	p.result.Stdout, p.result.Stderr = p.stdout.String(), p.stderr.String()
	p.result.ExitCode = exitCode(p.cmd, err)
	close(p.done)
}

func exitCode(cmd *exec.Cmd, err error) int {
	if cmd.ProcessState == nil {
		return -1
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return -1
	}
	return cmd.ProcessState.ExitCode()
}

// Output is what tcplens has printed to stdout so far, for tests that wait
// for a report while it runs.
// Only whole lines are returned.
func (p *Process) Output() Result {
	out := p.stdout.String()
	out = out[:strings.LastIndexByte(out, '\n')+1]
	return Result{ExitCode: -1, Stdout: out, Stderr: p.stderr.String()}
}

// PID is the tcplens process's PID.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Stop interrupts tcplens (SIGINT, as Ctrl-C) and waits up to 10 s for it
// to print its summary and exit; after that it is killed and the test fails.
func (p *Process) Stop() Result {
	p.t.Helper()
	return p.signal(syscall.SIGINT, 10*time.Second)
}

// Wait waits up to timeout for tcplens to exit by itself; after that it is
// killed and the test fails.
func (p *Process) Wait(timeout time.Duration) Result {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.cmd.Process.Kill()
		<-p.done
		p.t.Fatalf("testnet: tcplens (pid %d) still running after %v; killed. stderr: %s", p.PID(), timeout, p.result.Stderr)
	}
	return p.result
}

// Kill ends tcplens with SIGKILL, leaving it no chance to clean up.
func (p *Process) Kill() Result {
	p.t.Helper()
	return p.signal(syscall.SIGKILL, 10*time.Second)
}

func (p *Process) signal(sig syscall.Signal, timeout time.Duration) Result {
	p.t.Helper()
	select {
	case <-p.done:
		p.t.Fatalf("testnet: tcplens exited (%d) before it was stopped; stderr: %s", p.result.ExitCode, p.result.Stderr)
	default:
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("testnet: signal tcplens (pid %d): %v", p.PID(), err)
	}
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.cmd.Process.Kill()
		<-p.done
		p.t.Fatalf("testnet: tcplens (pid %d) still running %s after %v; killed. stderr: %s", p.PID(), timeout, sig, p.result.Stderr)
	}
	return p.result
}

// RunTcplens runs tcplens in the namespace to completion (at most 15 s),
// for commands expected to end by themselves.
func (ns *NS) RunTcplens(t testing.TB, args ...string) Result {
	t.Helper()
	cmd := ns.Command(Tcplens(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("testnet: start tcplens: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("testnet: tcplens %s still running after 15 s; killed. stderr: %s", strings.Join(args, " "), stderr.String())
	}
	return Result{ExitCode: exitCode(cmd, err), Stdout: stdout.String(), Stderr: stderr.String()}
}

// Record is one line of tcplens's JSON output.
type Record map[string]any

// Type is the record's "type".
func (r Record) Type() string { s, _ := r["type"].(string); return s }

// Uint reads a number at a dotted path such as "flags.syn", or fails t.
func (r Record) Uint(t testing.TB, path string) uint64 {
	t.Helper()
	var v any = map[string]any(r)
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("testnet: %q: %v is not an object in %v", path, v, r)
		}
		if v, ok = m[k]; !ok {
			t.Fatalf("testnet: no %q in %v", path, r)
		}
	}
	n, ok := v.(json.Number)
	if !ok {
		t.Fatalf("testnet: %q is %v, not a number, in %v", path, v, r)
	}
	u, err := n.Int64()
	if err != nil || u < 0 {
		t.Fatalf("testnet: %q is %v, not a count, in %v", path, v, r)
	}
	return uint64(u)
}

// String reads a string field, or fails t.
func (r Record) String(t testing.TB, key string) string {
	t.Helper()
	s, ok := r[key].(string)
	if !ok {
		t.Fatalf("testnet: %q is %v, not a string, in %v", key, r[key], r)
	}
	return s
}

// Records parses stdout as JSON lines, failing t on any line that is not
// one JSON object.
func (r Result) Records(t testing.TB) []Record {
	t.Helper()
	var out []Record
	sc := bufio.NewScanner(strings.NewReader(r.Stdout))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		dec := json.NewDecoder(strings.NewReader(line))
		dec.UseNumber()
		var rec Record
		if err := dec.Decode(&rec); err != nil || dec.More() {
			t.Fatalf("testnet: tcplens printed a line that is not one JSON object: %q", line)
		}
		out = append(out, rec)
	}
	return out
}

// Summary returns the one record of type "summary" (for the interface,
// when iface is not empty), failing t unless there is exactly one.
func (r Result) Summary(t testing.TB, iface string) Record {
	t.Helper()
	var found []Record
	for _, rec := range r.Records(t) {
		if rec.Type() != "summary" {
			continue
		}
		if iface != "" {
			if name, _ := rec["interface"].(string); name != iface {
				continue
			}
		}
		found = append(found, rec)
	}
	if len(found) != 1 {
		t.Fatalf("testnet: %d summary records for %q, want 1; stdout:\n%s\nstderr:\n%s", len(found), iface, r.Stdout, r.Stderr)
	}
	return found[0]
}
