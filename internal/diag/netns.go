// Package diag reads the kernel's view of every TCP socket on the host:
// sock_diag (INET_DIAG with TCP_INFO, as `ss -ti`) in each network
// namespace, the owning process of each socket from /proc, and each
// namespace's listen counters. It turns what it reads into internal/conn's
// pure model and holds no policy of its own.
package diag

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
)

// Namespace is one network namespace, found through a process or a name.
type Namespace struct {
	Inode uint64 // the namespace's inode: its identity on this host
	Path  string // a path that opens it: /proc/PID/ns/net or /run/netns/NAME
	Name  string // its name under /run/netns, if any
	PID   int    // a process inside it, 0 if none was found
}

// Namespaces finds every network namespace that a process is in or that
// has a name under /run/netns, each once (by inode), sorted by inode.
// Processes that exit while it looks are skipped.
func Namespaces() ([]Namespace, error) {
	return namespacesIn("/proc", "/run/netns")
}

func namespacesIn(proc, named string) ([]Namespace, error) {
	byInode := map[uint64]*Namespace{}
	ents, err := os.ReadDir(proc)
	if err != nil {
		return nil, fmt.Errorf("list processes in %s: %w", proc, err)
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		path := filepath.Join(proc, e.Name(), "ns", "net")
		ino, ok := inodeOf(path)
		if !ok {
			continue // gone, or a kernel thread without one we may see
		}
		if _, seen := byInode[ino]; !seen {
			byInode[ino] = &Namespace{Inode: ino, Path: path, PID: pid}
		}
	}
	if ents, err := os.ReadDir(named); err == nil {
		for _, e := range ents {
			path := filepath.Join(named, e.Name())
			ino, ok := inodeOf(path)
			if !ok {
				continue // a name whose mount is gone
			}
			if ns, seen := byInode[ino]; seen {
				ns.Name = e.Name()
				continue
			}
			byInode[ino] = &Namespace{Inode: ino, Path: path, Name: e.Name()}
		}
	}
	out := make([]Namespace, 0, len(byInode))
	for _, ns := range byInode {
		out = append(out, *ns)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Inode < out[j].Inode })
	return out, nil
}

// inodeOf is the inode of the namespace file at path (stat follows the
// /proc magic link to the nsfs inode).
func inodeOf(path string) (uint64, bool) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, false
	}
	return st.Ino, true
}

// SelfNamespace is the inode of tcplens's own network namespace.
func SelfNamespace() uint64 {
	ino, _ := inodeOf("/proc/thread-self/ns/net")
	return ino
}
