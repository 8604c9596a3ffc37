package probe

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

const (
	tracefsPath  = "/sys/kernel/tracing"
	tracefsMagic = 0x74726163
	bpffsPath    = "/sys/fs/bpf"
	bpffsMagic   = 0xcafe4a11
)

func mountedAs(path string, magic int64) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && int64(st.Type) == magic
}

// EnsureTracefs makes sure tracefs is mounted at /sys/kernel/tracing, where
// tracepoint IDs are read from, mounting it if needed. It reports whether it
// mounted it.
func EnsureTracefs() (mounted bool, err error) {
	if mountedAs(tracefsPath, tracefsMagic) {
		return false, nil
	}
	if _, err := os.Stat(tracefsPath); err != nil {
		return false, fmt.Errorf("tracefs: %s does not exist (kernel built without CONFIG_TRACING?)", tracefsPath)
	}
	if err := unix.Mount("tracefs", tracefsPath, "tracefs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		if errors.Is(err, unix.EPERM) {
			return false, &PrivilegeError{Why: fmt.Sprintf("tracefs is not mounted at %s (mount -t tracefs tracefs %s)", tracefsPath, tracefsPath),
				Needs: []Capability{CapSysAdmin}, Missing: []Capability{CapSysAdmin}}
		}
		return false, fmt.Errorf("tracefs is not mounted at %s and mounting it failed: %v (mount -t tracefs tracefs %s)", tracefsPath, err, tracefsPath)
	}
	return true, nil
}
