package cli

import (
	"io"
	"strconv"
	"testing"

	"github.com/tcplens/tcplens/internal/output"
)

// BenchmarkStreamRetransJSON is the user-space half of a socket-path
// command's end-to-end rate: ring buffer records (recorded bytes through
// the fake reader) decoded, counted and written as JSON lines to a sink,
// through cli.Main as a user runs it. Run it on one core
// (`go test ./internal/cli -run - -bench StreamRetransJSON -cpu 1`); the
// records/s metric is what one core turns into JSON lines.
//
// Two variants in the same run: "appender" is what tcplens does (each
// record's hand-written AppendJSON), "encoding_json" the baseline
// (reflection, as before); the ratio of their records/s is the gain.
func BenchmarkStreamRetransJSON(b *testing.B) {
	for _, v := range []struct {
		name    string
		reflect bool
	}{{"appender", false}, {"encoding_json", true}} {
		b.Run(v.name, func(b *testing.B) {
			output.ReflectJSON = v.reflect
			defer func() { output.ReflectJSON = false }()
			benchStreamRetransJSON(b)
		})
	}
}

func benchStreamRetransJSON(b *testing.B) {
	const n = 200_000
	recs := retransRecords(n)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		fr := &fakeReader{records: append([][]byte(nil), recs...)}
		old := startSockTrace
		fakeKernel(b, fr)
		b.StartTimer()
		code := Main([]string{"retrans", "-o", "json", "--count", strconv.Itoa(n)}, Env{Stdout: io.Discard, Stderr: io.Discard})
		b.StopTimer()
		startSockTrace = old
		if code != ExitOK {
			b.Fatalf("exit %d", code)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
