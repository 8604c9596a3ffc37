package sockproc

import (
	"net/netip"
	"testing"
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
