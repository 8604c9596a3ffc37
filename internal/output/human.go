package output

import (
	"fmt"
	"time"
)

// Duration is d for a person: three or four significant digits in the
// largest unit that fits ("150µs", "1.23ms", "2.5s", "10m11.3s"), where
// millisecond counts like "611282.039ms" are hard to read.
func Duration(d time.Duration) string {
	var unit time.Duration
	switch a := max(d, -d); {
	case a < time.Millisecond:
		unit = time.Microsecond
	case a < time.Second:
		unit = 10 * time.Microsecond
	case a < time.Minute:
		unit = 10 * time.Millisecond
	default:
		unit = 100 * time.Millisecond
	}
	return d.Round(unit).String()
}

// Bytes is n for a person, in IEC units: "512 B", "68.4 KiB", "1.2 MiB".
func Bytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// Plural is "1 record" or "n records": count and noun, the noun with an
// s unless n is 1.
func Plural(n uint64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
