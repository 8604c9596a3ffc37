package diag

import (
	"os"
	"path/filepath"
	"testing"
)

// TestOwnersFromFakeProc reads owners from a /proc laid out by the test:
// the lowest pid wins a shared socket, other links and pids are skipped.
func TestOwnersFromFakeProc(t *testing.T) {
	proc := t.TempDir()
	mk := func(pid, comm, cgroup string, links map[string]string) {
		fd := filepath.Join(proc, pid, "fd")
		if err := os.MkdirAll(fd, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(proc, pid, "comm"), []byte(comm+"\n"), 0o644)
		os.WriteFile(filepath.Join(proc, pid, "cgroup"), []byte(cgroup), 0o644)
		for name, target := range links {
			if err := os.Symlink(target, filepath.Join(fd, name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	mk("20", "child", "0::/system.slice/web.service\n", map[string]string{"3": "socket:[100]", "4": "socket:[200]"})
	mk("10", "parent", "0::/\n", map[string]string{"3": "socket:[100]", "5": "/dev/null", "6": "pipe:[100]"})
	mk("self", "x", "", map[string]string{"3": "socket:[200]"})
	got := ownersIn(proc, map[uint32]bool{100: true, 200: true, 300: true})
	if o := got[100]; o.PID != 10 || o.Comm != "parent" || o.Cgroup != "/" {
		t.Errorf("socket 100: %+v, want pid 10 parent in /", o)
	}
	if o := got[200]; o.PID != 20 || o.Unit != "web.service" {
		t.Errorf("socket 200: %+v, want pid 20 in web.service", o)
	}
	if _, ok := got[300]; ok || len(got) != 2 {
		t.Errorf("owners %+v, want sockets 100 and 200 only", got)
	}
}

// TestNamespacesDedup finds each namespace once across processes, with
// names from the named directory; plain files stand in for nsfs inodes.
func TestNamespacesDedup(t *testing.T) {
	proc, named := t.TempDir(), t.TempDir()
	ns1 := filepath.Join(t.TempDir(), "ns1")
	os.WriteFile(ns1, nil, 0o644)
	ns2 := filepath.Join(named, "blue")
	os.WriteFile(ns2, nil, 0o644)
	for _, pid := range []string{"1", "2"} {
		os.MkdirAll(filepath.Join(proc, pid, "ns"), 0o755)
		os.Symlink(ns1, filepath.Join(proc, pid, "ns", "net"))
	}
	nss, err := namespacesIn(proc, named)
	if err != nil {
		t.Fatal(err)
	}
	if len(nss) != 2 {
		t.Fatalf("%d namespaces, want 2: %+v", len(nss), nss)
	}
	var sawPid, sawNamed bool
	for _, ns := range nss {
		sawPid = sawPid || (ns.PID == 1 && ns.Name == "")
		sawNamed = sawNamed || (ns.Name == "blue" && ns.PID == 0)
	}
	if !sawPid || !sawNamed {
		t.Errorf("namespaces %+v", nss)
	}
}
