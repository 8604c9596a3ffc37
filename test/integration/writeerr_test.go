package integration

import (
	"os"
	"strings"
	"testing"

	"github.com/tcplens/tcplens/internal/testnet"
	"github.com/tcplens/tcplens/internal/testutil"
)

// Text written to /dev/full is lost: the run must end with exit 1 and say
// why, not exit 0. The oracle is the kernel's ENOSPC from /dev/full.
func TestWriteToDevFullExitsOne(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Parallel()
	p := testnet.NewPair(t)
	bin := testnet.Tcplens(t)
	for _, args := range [][]string{
		{"flags", "-i", p.B.Link, "--hook", "tc", "--interval", "100ms", "--duration", "5s"},
		{"syn", "-i", p.B.Link, "--hook", "tc", "--interval", "100ms", "--duration", "5s"},
		{"retrans", "--duration", "300ms"},
	} {
		t.Run(args[0], func(t *testing.T) {
			full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer full.Close()
			cmd := p.B.Command(bin, args...)
			code, _, stderr := runPrivCmd(t, withStdout(cmd, full))
			if code != 1 {
				t.Errorf("exit code %d, want 1; stderr: %s", code, stderr)
			}
			if !strings.Contains(stderr, "no space left on device") {
				t.Errorf("stderr does not say the output was lost: %q", stderr)
			}
			if att := p.B.Attachments(t); !att.Empty() {
				t.Errorf("left attached: %v", att)
			}
		})
	}
}
