package ksym

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A synthetic kallsyms: unsorted like a real one once modules and BPF
// programs are listed, with data symbols, an alias and a module.
const synthetic = `ffffffff81000000 T _stext
ffffffff81000000 T _text
ffffffff82033000 t __pfx_tcp_v4_rcv
ffffffff820339c0 T tcp_v4_rcv
ffffffff82034000 T tcp_v4_do_rcv
ffffffff82500000 D init_net
ffffffffc0a01000 t nf_hook_thing	[nf_tables]
ffffffff82040000 W weak_fn
ffffffffc0a02000 t bpf_prog_6deef7357e7b4530_kfree_skb	[bpf]
`

func TestLookup(t *testing.T) {
	tab, err := Parse(synthetic)
	if err != nil {
		t.Fatal(err)
	}
	if tab.Len() != 7 { // the alias of _stext and the data symbol are not kept
		t.Errorf("%d symbols, want 7", tab.Len())
	}
	for _, c := range []struct {
		addr uint64
		want string
	}{
		{0xffffffff82033a51, "tcp_v4_rcv+0x91"},
		{0xffffffff820339c0, "tcp_v4_rcv+0x0"},
		{0xffffffff820339bf, "__pfx_tcp_v4_rcv+0x9bf"},
		{0xffffffff82034001, "tcp_v4_do_rcv+0x1"},
		{0xffffffff81000010, "_stext+0x10"},
		{0xffffffff82500010, "weak_fn+0x4c0010"}, // data is not code: the code before it is named
		{0xffffffffc0a01010, "nf_hook_thing+0x10 [nf_tables]"},
		{0xffffffffc0a02020, "bpf_prog_6deef7357e7b4530_kfree_skb+0x20 [bpf]"},
		{0xffffffff80000000, "0xffffffff80000000"}, // below every symbol
		{0xffffffffc0c02020, "0xffffffffc0c02020"}, // far past the last one
	} {
		if got := tab.Name(c.addr); got != c.want {
			t.Errorf("Name(%#x) = %q, want %q", c.addr, got, c.want)
		}
	}
	var nilTab *Table
	if got := nilTab.Name(0xffffffff82033a51); got != "0xffffffff82033a51" {
		t.Errorf("nil table: %q", got)
	}
}

func TestRestricted(t *testing.T) {
	lines := strings.Split(strings.TrimSpace(synthetic), "\n")
	for i, l := range lines {
		lines[i] = "0000000000000000" + l[16:]
	}
	if _, err := Parse(strings.Join(lines, "\n")); !errors.Is(err, ErrRestricted) {
		t.Errorf("all-zero addresses: %v, want ErrRestricted", err)
	}
	if _, err := Parse("garbage\n"); err == nil {
		t.Error("no symbols: no error")
	}
}

func TestLoadFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "kallsyms")
	if err := os.WriteFile(p, []byte(synthetic), 0o644); err != nil {
		t.Fatal(err)
	}
	tab, err := LoadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := tab.Name(0xffffffff82033a51); got != "tcp_v4_rcv+0x91" {
		t.Errorf("%q", got)
	}
}

// BenchmarkLoad reads this machine's /proc/kallsyms: the start-up cost
// of symbolizing.
func BenchmarkLoad(b *testing.B) {
	for b.Loop() {
		if _, err := Load(); err != nil {
			b.Skip(err)
		}
	}
}

func BenchmarkAppendName(b *testing.B) {
	tab, err := Load()
	if err != nil {
		b.Skip(err)
	}
	addr := tab.syms[len(tab.syms)/2].addr + 0x20
	buf := make([]byte, 0, 128)
	for b.Loop() {
		buf = tab.AppendName(buf[:0], addr)
	}
}
