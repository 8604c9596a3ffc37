package diag

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/tcplens/tcplens/internal/conn"
	"github.com/tcplens/tcplens/internal/netstat"
)

// Owners maps socket inodes to the process holding them, from every
// /proc/PID/fd. A socket held by several processes (a fork) goes to the
// lowest PID. Processes that exit meanwhile are skipped.
func Owners(want map[uint32]bool) map[uint32]conn.Owner {
	return ownersIn("/proc", want)
}

func ownersIn(proc string, want map[uint32]bool) map[uint32]conn.Owner {
	out := map[uint32]conn.Owner{}
	if len(want) == 0 {
		return out
	}
	ents, err := os.ReadDir(proc)
	if err != nil {
		return out
	}
	buf := make([]byte, 64)
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		fdDir := filepath.Join(proc, e.Name(), "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue
		}
		var owner *conn.Owner
		for _, fd := range fds {
			n, err := unix.Readlink(filepath.Join(fdDir, fd.Name()), buf)
			if err != nil || n < len("socket:[1]") || string(buf[:8]) != "socket:[" {
				continue
			}
			ino, err := strconv.ParseUint(string(buf[8:n-1]), 10, 32)
			if err != nil || !want[uint32(ino)] {
				continue
			}
			if prev, ok := out[uint32(ino)]; ok && prev.PID < pid {
				continue
			}
			if owner == nil {
				owner = processOwner(proc, e.Name(), pid)
			}
			out[uint32(ino)] = *owner
		}
	}
	return out
}

func processOwner(proc, dir string, pid int) *conn.Owner {
	o := &conn.Owner{PID: pid}
	if b, err := os.ReadFile(filepath.Join(proc, dir, "comm")); err == nil {
		o.Comm = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile(filepath.Join(proc, dir, "cgroup")); err == nil {
		conn.ParseCgroup(conn.CgroupV2Path(string(b)), o)
	}
	return o
}

// Counters reads a namespace's ListenOverflows and ListenDrops: through a
// process in it when there is one, else from a thread switched into it.
func Counters(ns Namespace) (conn.NetNSCounters, error) {
	if ns.PID > 0 {
		if l, err := netstat.ReadListenFile(filepath.Join("/proc", strconv.Itoa(ns.PID), "net", "netstat")); err == nil {
			return conn.NetNSCounters{ListenOverflows: l.Overflows, ListenDrops: l.Drops}, nil
		}
	}
	var l netstat.Listen
	err := InNamespace(ns.Path, func() error {
		var err error
		l, err = netstat.ReadListen()
		return err
	})
	if err != nil {
		return conn.NetNSCounters{}, fmt.Errorf("network namespace %s: %w", ns.Path, err)
	}
	return conn.NetNSCounters{ListenOverflows: l.Overflows, ListenDrops: l.Drops}, nil
}

// InNamespace runs fn on a thread switched into the network namespace at
// path and back.
func InNamespace(path string, fn func() error) error {
	target, err := os.Open(path)
	if err != nil {
		return err
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Left locked: the runtime ends the thread with the goroutine.
			errc <- err
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
