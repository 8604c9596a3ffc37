package probe

import (
	"os"
	"testing"

	"github.com/tcplens/tcplens/internal/testutil"
)

// TestSockPathCORELoad loads and attaches every socket-path object of
// this package's own C (retrans, resets, states, rtt): their tracepoint
// records are read through CO-RE, so each must relocate and pass the
// verifier on whatever kernel runs the test (6.1, 6.12, 6.18 in CI). A
// kernel without sock:sock_send_length must leave exactly those programs
// out of states, and one with it must leave nothing out.
func TestSockPathCORELoad(t *testing.T) {
	testutil.RequirePrivileged(t)
	loaders := map[string]func(SockTracerOptions) (*SockTracer, error){
		"retrans": LoadRetrans,
		"resets":  LoadResets,
		"states":  LoadStates,
		"rtt": func(o SockTracerOptions) (*SockTracer, error) {
			return LoadRTT(o, RTTConfig{Sample: DefaultRTTSample})
		},
	}
	for name, load := range loaders {
		tr, err := load(SockTracerOptions{})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if name == "states" {
			_, statErr := os.Stat("/sys/kernel/tracing/events/sock/sock_send_length")
			has := statErr == nil
			if has && len(tr.Without) != 0 {
				t.Errorf("states left out %v on a kernel that has them", tr.Without)
			}
			if !has && len(tr.Without) != 2 {
				t.Errorf("states without sock_send_length left out %v, want send and recv length", tr.Without)
			}
		}
		if _, err := tr.RecursionMisses(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if err := tr.Close(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
