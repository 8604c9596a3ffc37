package pcapout

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A SYN from 10.0.0.1:40000 to 10.0.0.2:80 with MSS, SACK-permitted,
// timestamps, NOP and window scale.
var synFrame = []byte{
	0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x08, 0x00,
	0x45, 0, 0, 60, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
	0x9c, 0x40, 0, 80, 0, 0, 0x03, 0xe8, 0, 0, 0, 0, 0xa0, 0x02, 0xfa, 0xf0, 0, 0, 0, 0,
	2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
}

func TestLine(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 678901000, time.Local)
	got := string(Line(nil, Packet{Time: ts, Dir: DirIn, OrigLen: len(synFrame), Data: synFrame, Comment: "PID: 7, Command: curl"}, "veth0"))
	want := "03:04:05.678901 veth0 In  IP 10.0.0.1.40000 > 10.0.0.2.80: Flags [S], seq 1000, win 64240, options [mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7], length 0, PID: 7, Command: curl\n"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

// Packets written come back with their interface, direction, comment,
// lengths and nanosecond timestamps; rotation starts new files and reuses
// names past RotateCount.
func TestWriteReadRotate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.pcapng")
	ifaces := []Interface{{"eth0", DirIn}, {"eth0", DirOut}}
	w, err := NewFileWriter(path, WriterOptions{Interfaces: ifaces, RotateSize: 1000, RotateCount: 2})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Unix(1700000000, 123456789)
	const n = 30
	for i := 0; i < n; i++ {
		p := Packet{Time: base.Add(time.Duration(i)), Interface: i % 2, Dir: Direction(1 + i%2), OrigLen: 1500, Data: synFrame, Comment: "c"}
		if err := w.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".2"); err == nil {
		t.Error("c.pcapng.2 exists with RotateCount 2")
	}
	total := 0
	for _, name := range []string{path, path + ".1"} {
		err := ReadFile(name, func(p Packet, iface string) error {
			total++
			if iface != "eth0" || p.OrigLen != 1500 || !bytes.Equal(p.Data, synFrame) || p.Comment != "c" {
				t.Errorf("%s: read back %+v on %q", name, p, iface)
			}
			i := int(p.Time.Sub(base))
			if i < 0 || i >= n || p.Dir != Direction(1+i%2) || p.Interface != i%2 {
				t.Errorf("%s: packet %d: time %v dir %v iface %d", name, i, p.Time, p.Dir, p.Interface)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if total == 0 || total >= n {
		t.Errorf("the two kept files hold %d of %d packets; the ring should have dropped the oldest", total, n)
	}
}

func TestReadRefusesGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x")
	os.WriteFile(path, []byte("not a capture file at all"), 0o644)
	err := ReadFile(path, func(Packet, string) error { return nil })
	if err == nil || strings.Contains(err.Error(), "\n") {
		t.Errorf("got %v, want a one-line error", err)
	}
}

// The size that rotation goes by is the file's size.
func TestSizeIsExact(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.pcapng")
	w, err := NewFileWriter(path, WriterOptions{Interfaces: []Interface{{"a", DirIn}}})
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range []string{"", "x", "PID: 1, Command: abcdefg"} {
		if err := w.Write(Packet{Time: time.Now(), Dir: DirIn, Data: synFrame[:54+i], Comment: c}); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	st, err := os.Stat(path)
	if err != nil || st.Size() != w.size {
		t.Errorf("file has %v bytes, the writer counted %d (%v)", st.Size(), w.size, err)
	}
}

// TestLargeBlocks writes blocks larger than bufio's free space (comments
// near the 64 KiB option limit, which writeEPB builds outside the buffer)
// between small ones, and reads every one back with pcapgo's reader.
func TestLargeBlocks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "l.pcapng")
	w, err := NewFileWriter(path, WriterOptions{Interfaces: []Interface{{"a", DirIn}, {"a", DirOut}}})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 30 {
		c := ""
		if i%3 == 0 {
			c = strings.Repeat(string(rune('a'+i%26)), 60000+i)
		}
		want = append(want, c)
		if err := w.Write(Packet{Time: time.Unix(0, int64(i)), Interface: i % 2, Dir: Direction(1 + i%2), Data: synFrame, Comment: c}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	i := 0
	err = ReadFile(path, func(p Packet, _ string) error {
		if i < len(want) && (p.Comment != want[i] || !bytes.Equal(p.Data, synFrame) || p.Dir != Direction(1+i%2) || p.Time.UnixNano() != int64(i)) {
			t.Errorf("packet %d: comment of %d bytes (want %d), dir %v, time %d", i, len(p.Comment), len(want[i]), p.Dir, p.Time.UnixNano())
		}
		i++
		return nil
	})
	if err != nil || i != len(want) {
		t.Errorf("read %d packets of %d: %v", i, len(want), err)
	}
}

func BenchmarkWrite(b *testing.B) {
	w, err := NewStreamWriter(io.Discard, WriterOptions{Interfaces: []Interface{{"a", DirIn}, {"a", DirOut}}})
	if err != nil {
		b.Fatal(err)
	}
	p := Packet{Time: time.Now(), Dir: DirIn, Data: synFrame, OrigLen: 1514}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := w.Write(p); err != nil {
			b.Fatal(err)
		}
	}
}
