// Package netstat reads the kernel's own TCP counters of a network
// namespace from /proc/net/netstat, for what no tracepoint reports.
package netstat

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Path is this thread's namespace's netstat. thread-self, not self: a Go
// thread may have entered another namespace than the process's first.
const Path = "/proc/thread-self/net/netstat"

// Listen holds the listen-queue counters (TcpExt). ListenOverflows counts
// connections a listener turned away because its accept queue was full;
// ListenDrops counts every connection request a listener dropped, the
// overflows included.
type Listen struct {
	Overflows, Drops uint64
}

// Sub is l minus earlier, the counts between two readings.
func (l Listen) Sub(earlier Listen) Listen {
	return Listen{Overflows: l.Overflows - earlier.Overflows, Drops: l.Drops - earlier.Drops}
}

// ReadListen reads the listen-queue counters of the calling thread's
// namespace.
func ReadListen() (Listen, error) { return ReadListenFile(Path) }

// ReadListenFile reads them from a file in /proc/net/netstat's format.
func ReadListenFile(path string) (Listen, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Listen{}, fmt.Errorf("read listen-queue counters: %w", err)
	}
	ext, err := section(string(b), "TcpExt")
	if err != nil {
		return Listen{}, fmt.Errorf("read listen-queue counters from %s: %w", path, err)
	}
	var l Listen
	for _, c := range []struct {
		name string
		to   *uint64
	}{{"ListenOverflows", &l.Overflows}, {"ListenDrops", &l.Drops}} {
		v, ok := ext[c.name]
		if !ok {
			return Listen{}, fmt.Errorf("read listen-queue counters from %s: no TcpExt %s", path, c.name)
		}
		*c.to = v
	}
	return l, nil
}

// section parses the pair of lines "Proto: Name1 Name2" and
// "Proto: value1 value2" for proto.
func section(text, proto string) (map[string]uint64, error) {
	lines := strings.Split(text, "\n")
	for i := 0; i+1 < len(lines); i++ {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || names[0] != proto+":" {
			continue
		}
		if len(values) != len(names) || values[0] != names[0] {
			return nil, fmt.Errorf("%s: names and values do not pair", proto)
		}
		out := make(map[string]uint64, len(names)-1)
		for j := 1; j < len(names); j++ {
			v, err := strconv.ParseUint(values[j], 10, 64)
			if err != nil {
				continue // a signed counter; not one of ours
			}
			out[names[j]] = v
		}
		return out, nil
	}
	return nil, fmt.Errorf("no %s counters", proto)
}
