package agent

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// CgroupMemoryMax is the memory limit of the cgroup (v2) the agent runs in
// (a pod's limits.memory, a unit's MemoryMax), 0 when there is none. The
// CLI sets the Go runtime's soft limit below it, so that the collector
// works harder near the limit instead of the kernel killing the agent.
func CgroupMemoryMax() int64 {
	return cgroupMemoryMax("/proc/self/cgroup", "/sys/fs/cgroup")
}

func cgroupMemoryMax(self, root string) int64 {
	b, err := os.ReadFile(self)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		path, ok := strings.CutPrefix(line, "0::")
		if !ok {
			continue
		}
		// The nearest limit up the tree is the one that applies.
		for dir := filepath.Join(root, path); strings.HasPrefix(dir, root); dir = filepath.Dir(dir) {
			v, err := os.ReadFile(filepath.Join(dir, "memory.max"))
			if err == nil {
				if n, err := strconv.ParseInt(strings.TrimSpace(string(v)), 10, 64); err == nil && n > 0 {
					return n
				}
			}
			if dir == root {
				break
			}
		}
	}
	return 0
}
