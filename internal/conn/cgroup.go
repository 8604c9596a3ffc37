package conn

import (
	"regexp"
	"strings"
)

var (
	// A container runtime's id: 64 hex digits, as docker-<id>.scope,
	// cri-containerd-<id>.scope, crio-<id>.scope, libpod-<id>.scope or a
	// bare path element (cgroupfs driver).
	containerID = regexp.MustCompile(`(?:^|[-/])([0-9a-f]{64})(?:\.scope)?$`)
	// A pod's UID in kubepods paths: pod<uid> (cgroupfs) or
	// pod<uid_with_underscores>.slice (systemd).
	podUID = regexp.MustCompile(`pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})`)
)

// ParseCgroup fills a cgroup path's container id, pod UID and systemd unit
// into o.
func ParseCgroup(path string, o *Owner) {
	o.Cgroup = path
	for _, el := range strings.Split(path, "/") {
		if m := containerID.FindStringSubmatch(el); m != nil {
			o.Container = m[1]
		}
		if m := podUID.FindStringSubmatch(el); m != nil {
			o.PodUID = strings.ReplaceAll(m[1], "_", "-")
		}
		if strings.HasSuffix(el, ".service") || (strings.HasSuffix(el, ".scope") && o.Container == "") {
			o.Unit = el
		}
	}
	if o.Container != "" {
		o.Unit = "" // the scope is the container's, not a unit of the host's
	}
}

// CgroupV2Path is the cgroup v2 path of a /proc/PID/cgroup file's text
// (its "0::" line), or "" without one.
func CgroupV2Path(procCgroup string) string {
	for _, line := range strings.Split(procCgroup, "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return p
		}
	}
	return ""
}
