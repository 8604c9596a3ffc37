package diag

import (
	"fmt"
	"time"

	"github.com/tcplens/tcplens/internal/conn"
)

// Snapshot reads every namespace's TCP sockets, their owners and the
// namespaces' listen counters. A namespace that goes away while it is read
// is skipped; warnings say what was skipped or read incompletely.
func Snapshot(now func() time.Time) (*conn.Snapshot, []string, error) {
	return SnapshotWhere(now, nil)
}

// SnapshotWhere is Snapshot of the namespaces keep accepts (nil: all), for
// the agent's --netns self.
func SnapshotWhere(now func() time.Time, keep func(Namespace) bool) (*conn.Snapshot, []string, error) {
	nss, err := Namespaces()
	if err != nil {
		return nil, nil, err
	}
	s := &conn.Snapshot{NetNS: map[uint64]conn.NetNSCounters{}, NetNSNames: map[uint64]string{}}
	var warnings []string
	want := map[uint32]bool{}
	for _, ns := range nss {
		if keep != nil && !keep(ns) {
			continue
		}
		samples, interrupted, err := Sockets(ns)
		if err != nil {
			warnings = append(warnings, err.Error())
			continue
		}
		if interrupted {
			warnings = append(warnings, fmt.Sprintf("network namespace %s: sockets changed during every dump; this one may miss some", ns.Path))
		}
		for _, sm := range samples {
			if sm.Inode != 0 {
				want[sm.Inode] = true
			}
		}
		s.Samples = append(s.Samples, samples...)
		if c, err := Counters(ns); err == nil {
			s.NetNS[ns.Inode] = c
		} else {
			warnings = append(warnings, err.Error())
		}
		if ns.Name != "" {
			s.NetNSNames[ns.Inode] = ns.Name
		}
	}
	s.Time = now()
	s.Owners = Owners(want)
	return s, warnings, nil
}
