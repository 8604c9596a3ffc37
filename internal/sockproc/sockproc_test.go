package sockproc

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestParseHexAddrPort(t *testing.T) {
	for in, want := range map[string]string{
		"0100007F:0050":                         "127.0.0.1:80",
		"00000000000000000000000001000000:1F90": "[::1]:8080",
		"0000000000000000FFFF00000100007F:0016": "127.0.0.1:22", // v4-mapped
	} {
		got, ok := parseHexAddrPort(in)
		if !ok || got != netip.MustParseAddrPort(want) {
			t.Errorf("%s: got %v %v, want %s", in, got, ok, want)
		}
	}
}

func TestParseTuple(t *testing.T) {
	frame := []byte{
		0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x81, 0x00, 0, 5, 0x08, 0x00, // one VLAN tag
		0x46, 0, 0, 44, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 1, 1, 0, 0, // IHL 6
		0x9c, 0x40, 0, 80, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x12, 0, 0, 0, 0, 0, 0,
	}
	tp, ok := ParseTuple(frame)
	want := Tuple{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), SPort: 40000, DPort: 80, Flags: 0x12}
	if !ok || tp != want {
		t.Errorf("got %+v %v, want %+v", tp, ok, want)
	}
	if _, ok := ParseTuple(frame[:40]); ok {
		t.Error("a truncated frame parsed")
	}
}

// TestLowestPIDNamesSharedSocket: when two processes hold a socket (a
// child between fork and exec holds all of its parent's), the lowest PID
// names it, in numeric order: by name, "1114" sorts before "611".
func TestLowestPIDNamesSharedSocket(t *testing.T) {
	proc := t.TempDir()
	write := func(path, data string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(proc, path)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(proc, path), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("net/tcp", "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"+
		"   0: 0100000A:9C40 0200000A:0050 01 00000000:00000000 00:00000000 00000000     0        0 12345 1 0 20 4 30 10 -1\n")
	write("net/tcp6", "  sl  local_address remote_address st\n")
	for pid, comm := range map[string]string{"611": "parent", "1114": "child"} {
		write(pid+"/comm", comm+"\n")
		if err := os.MkdirAll(filepath.Join(proc, pid, "fd"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("socket:[12345]", filepath.Join(proc, pid, "fd", "3")); err != nil {
			t.Fatal(err)
		}
	}
	frame := []byte{
		0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x08, 0x00,
		0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
		0x9c, 0x40, 0, 80, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x10, 0, 0, 0, 0, 0, 0,
	}
	tab := &Table{proc: proc, misses: map[conn]time.Time{}}
	if got, want := tab.Describe(frame), "PID: 611, Command: parent"; got != want {
		t.Errorf("Describe = %q, want %q", got, want)
	}
}
