package output

import (
	"testing"
	"time"
)

func TestDuration(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{611282039 * time.Microsecond, "10m11.3s"},
		{150 * time.Microsecond, "150µs"},
		{1234567 * time.Nanosecond, "1.23ms"},
		{2000150 * time.Microsecond, "2s"},
		{2512 * time.Millisecond, "2.51s"},
		{0, "0s"},
	} {
		if got := Duration(c.d); got != c.want {
			t.Errorf("Duration(%d) = %q, want %q", c.d, got, c.want)
		}
	}
}

func TestBytes(t *testing.T) {
	for _, c := range []struct {
		n    uint64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {70002, "68.4 KiB"},
		{1258291, "1.2 MiB"}, {2117795705, "2.0 GiB"}, {1 << 62, "4.0 EiB"},
	} {
		if got := Bytes(c.n); got != c.want {
			t.Errorf("Bytes(%d) = %q, want %q", c.n, got, c.want)
		}
	}
}

func TestPlural(t *testing.T) {
	if got := Plural(1, "record"); got != "1 record" {
		t.Errorf("got %q", got)
	}
	if got := Plural(0, "record"); got != "0 records" {
		t.Errorf("got %q", got)
	}
}
