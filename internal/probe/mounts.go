package probe

import "golang.org/x/sys/unix"

const (
	bpffsPath  = "/sys/fs/bpf"
	bpffsMagic = 0xcafe4a11
)

func mountedAs(path string, magic int64) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && int64(st.Type) == magic
}
