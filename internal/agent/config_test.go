package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadConfig(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []Setting
		err        string
	}{
		{name: "empty", yaml: "# only a comment\n"},
		{name: "scalars and lists", yaml: "listen: 0.0.0.0:9464\ninterface:\n  - eth0\n  - eth1\npprof: true\nlog: []\n",
			want: []Setting{{"listen", []string{"0.0.0.0:9464"}, 1}, {"interface", []string{"eth0", "eth1"}, 2},
				{"pprof", []string{"true"}, 5}, {"log", []string{}, 6}}},
		{name: "null is the default", yaml: "listen:\n"},
		{name: "syntax", yaml: "listen: a\n  bad: [\n", err: "line 2"},
		{name: "not a mapping", yaml: "- a\n", err: "line 1: want a mapping"},
		{name: "nested", yaml: "listen:\n  a: b\n", err: "line 2: listen: want a value"},
		{name: "twice", yaml: "listen: a\nlisten: b\n", err: "line 2: listen given twice (first on line 1)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "agent.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := ReadConfig(path)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("error %v, want one line with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i].Key != tc.want[i].Key || got[i].Line != tc.want[i].Line || strings.Join(got[i].Values, ",") != strings.Join(tc.want[i].Values, ",") {
					t.Errorf("setting %d: %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestCgroupMemoryMax(t *testing.T) {
	root := t.TempDir()
	self := filepath.Join(root, "cgroup")
	write := func(path, text string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fs := filepath.Join(root, "fs")
	write(self, "0::/kubepods/pod1/agent\n")
	write(filepath.Join(fs, "kubepods/pod1/agent/memory.max"), "max\n")
	write(filepath.Join(fs, "kubepods/pod1/memory.max"), "536870912\n")
	if got := cgroupMemoryMax(self, fs); got != 512<<20 {
		t.Errorf("limit %d, want the pod's 512 MiB", got)
	}
	write(filepath.Join(fs, "kubepods/pod1/memory.max"), "max\n")
	if got := cgroupMemoryMax(self, fs); got != 0 {
		t.Errorf("limit %d, want none", got)
	}
}
