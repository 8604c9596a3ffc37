package cli

import (
	"bytes"
	"strings"
	"syscall"
	"testing"
)

// fullWriter fails every write, as /dev/full does.
type fullWriter struct{ writes int }

func (f *fullWriter) Write(p []byte) (int, error) {
	f.writes++
	return 0, syscall.ENOSPC
}

// Output lost to a failing stdout ends the run with exit 1 and one line
// saying so, in text and in JSON. doctor runs its checks as this process;
// without root they fail, which changes its table, not its writing.
func TestWriteErrorExitsOne(t *testing.T) {
	for _, args := range [][]string{
		{"version"},
		{"doctor"},
		{"doctor", "-o", "json"},
		{"help"},
	} {
		t.Run(strings.Join(args, "_"), func(t *testing.T) {
			var stderr bytes.Buffer
			w := &fullWriter{}
			code := Main(args, Env{Stdout: w, Stderr: &stderr})
			if w.writes == 0 {
				t.Fatalf("%v wrote nothing: the test proves nothing", args)
			}
			if code != ExitRuntime {
				t.Errorf("exit code %d, want %d; stderr: %s", code, ExitRuntime, stderr.String())
			}
			if !strings.Contains(stderr.String(), syscall.ENOSPC.Error()) {
				t.Errorf("stderr does not name the write error: %q", stderr.String())
			}
			if n := strings.Count(stderr.String(), syscall.ENOSPC.Error()); n != 1 {
				t.Errorf("write error reported %d times: %q", n, stderr.String())
			}
		})
	}
}

// A short write without an error is an error too (io.Writer's contract).
func TestCheckedWriterShortWrite(t *testing.T) {
	var stderr bytes.Buffer
	code := Main([]string{"version"}, Env{Stdout: shortWriter{}, Stderr: &stderr})
	if code != ExitRuntime {
		t.Errorf("exit code %d, want %d; stderr: %s", code, ExitRuntime, stderr.String())
	}
}

type shortWriter struct{}

func (shortWriter) Write(p []byte) (int, error) { return len(p) / 2, nil }
