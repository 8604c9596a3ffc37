package netstat

import (
	"os"
	"path/filepath"
	"testing"
)

const sample = `TcpExt: SyncookiesSent SyncookiesRecv ListenOverflows ListenDrops TCPHPHits
TcpExt: 0 0 17 21 4
IpExt: InNoRoutes ListenOverflows
IpExt: 0 99
`

func TestReadListenFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "netstat")
	if err := os.WriteFile(p, []byte(sample), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := ReadListenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if l != (Listen{Overflows: 17, Drops: 21}) {
		t.Errorf("%+v", l)
	}
	if d := (Listen{Overflows: 20, Drops: 30}).Sub(l); d != (Listen{Overflows: 3, Drops: 9}) {
		t.Errorf("Sub: %+v", d)
	}
	if err := os.WriteFile(p, []byte("TcpExt: A B\nTcpExt: 1 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadListenFile(p); err == nil {
		t.Error("no ListenOverflows: no error")
	}
}

func TestReadListenHere(t *testing.T) {
	if _, err := ReadListen(); err != nil {
		t.Fatal(err)
	}
}
