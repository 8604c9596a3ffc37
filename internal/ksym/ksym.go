// Package ksym names kernel code addresses from /proc/kallsyms:
// 0xffffffff82033a51 becomes tcp_v4_rcv+0x91.
//
// The table is read once, sorted by address, and searched in O(log n):
// one lookup per drop record must cost far less than the record itself.
package ksym

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Kallsyms is where the kernel lists its symbols.
const Kallsyms = "/proc/kallsyms"

// ErrRestricted means the kernel showed every address as 0: kptr_restrict
// hides them from this process (as root with kptr_restrict <= 1 they are
// visible).
var ErrRestricted = errors.New("the kernel hides symbol addresses (kernel.kptr_restrict; needs root, or kptr_restrict 0)")

// maxOffset bounds how far past its last symbol an address is still named
// after it: beyond the end of the kernel's text an address is not code.
const maxOffset = 1 << 20

type symbol struct {
	addr   uint64
	name   string
	module string // "" for the kernel itself
}

// Table is a sorted symbol table of kernel code.
type Table struct {
	syms []symbol
}

// Load reads /proc/kallsyms.
func Load() (*Table, error) { return LoadFile(Kallsyms) }

// LoadFile reads a file in /proc/kallsyms's format.
func LoadFile(path string) (*Table, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read kernel symbols: %w", err)
	}
	t, err := Parse(string(b))
	if err != nil {
		return nil, fmt.Errorf("read kernel symbols from %s: %w", path, err)
	}
	return t, nil
}

// Parse reads lines "ffffffff81000000 T _text" or
// "ffffffffc0a01000 t fn\t[module]". Only code symbols (types t, T, w, W)
// are kept: locations and stack frames are return addresses in code.
// Names are substrings of text, so a table of 100k symbols costs a few
// allocations, not 100k.
func Parse(text string) (*Table, error) {
	t := &Table{syms: make([]symbol, 0, strings.Count(text, "\n")/2+1)}
	sawAny := false
	for len(text) > 0 {
		line := text
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			text = ""
		}
		addrText, rest, ok1 := strings.Cut(line, " ")
		typ, rest, ok2 := strings.Cut(rest, " ")
		if !ok1 || !ok2 {
			continue
		}
		switch typ {
		case "t", "T", "w", "W":
		default:
			continue
		}
		addr, err := strconv.ParseUint(addrText, 16, 64)
		if err != nil {
			return nil, fmt.Errorf("bad address in %q", line)
		}
		sawAny = true
		if addr == 0 {
			continue
		}
		name, module, _ := strings.Cut(rest, "\t")
		s := symbol{addr: addr, name: strings.TrimSpace(name)}
		if module != "" {
			s.module = strings.Trim(strings.TrimSpace(module), "[]")
		}
		t.syms = append(t.syms, s)
	}
	if len(t.syms) == 0 {
		if sawAny {
			return nil, ErrRestricted
		}
		return nil, errors.New("no code symbols")
	}
	// Stable, so that of several names for one address the first listed
	// is kept.
	slices.SortStableFunc(t.syms, func(a, b symbol) int {
		switch {
		case a.addr < b.addr:
			return -1
		case a.addr > b.addr:
			return 1
		}
		return 0
	})
	t.syms = slices.CompactFunc(t.syms, func(a, b symbol) bool { return a.addr == b.addr })
	t.syms = slices.Clip(t.syms)
	return t, nil
}

// Len is the number of distinct code addresses named.
func (t *Table) Len() int { return len(t.syms) }

// Lookup finds the symbol that addr falls in: the one at the highest
// address not above it.
func (t *Table) Lookup(addr uint64) (name string, offset uint64, module string, ok bool) {
	i, found := slices.BinarySearchFunc(t.syms, addr, func(s symbol, a uint64) int {
		switch {
		case s.addr < a:
			return -1
		case s.addr > a:
			return 1
		}
		return 0
	})
	if !found {
		i-- // i is where addr would go: the symbol before it holds it
	}
	if i < 0 {
		return "", 0, "", false
	}
	s := t.syms[i]
	if i == len(t.syms)-1 && addr-s.addr > maxOffset {
		return "", 0, "", false
	}
	return s.name, addr - s.addr, s.module, true
}

// Name is addr as "tcp_v4_rcv+0x91", "nf_hook_slow+0x3f [nf_tables]" for
// a module's code, or "0xffffffff82033a51" when no symbol holds it.
func (t *Table) Name(addr uint64) string {
	var b []byte
	return string(t.AppendName(b, addr))
}

// AppendName appends Name(addr) to b.
func (t *Table) AppendName(b []byte, addr uint64) []byte {
	if t != nil {
		if name, off, mod, ok := t.Lookup(addr); ok {
			b = append(b, name...)
			b = append(b, "+0x"...)
			b = strconv.AppendUint(b, off, 16)
			if mod != "" {
				b = append(b, " ["...)
				b = append(b, mod...)
				b = append(b, ']')
			}
			return b
		}
	}
	return AppendHex(b, addr)
}

// AppendHex appends addr as 0x-prefixed hex.
func AppendHex(b []byte, addr uint64) []byte {
	b = append(b, "0x"...)
	return strconv.AppendUint(b, addr, 16)
}
