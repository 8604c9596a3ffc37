package output

import (
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Hand-written JSON for the records a socket-path command streams: the
// same bytes encoding/json writes for these structs (JSONLines has HTML
// escaping off), without reflection and without allocating. At a million
// records a second encoding/json's reflection was half of a command's
// time (BENCHMARKS.md). jsonappend_test.go holds encoding/json as the
// oracle: for random and fuzzed records both must write the same bytes.
//
// Each record's AppendJSON sits next to its struct (retrans.go, ...);
// this file holds what they share. A field added to one of these structs
// must be added to its AppendJSON too; TestAppendersCoverEveryField fails
// until it is, and a new record type joins appenders() in the test.

// JSONAppender is a record that writes its own JSON object.
type JSONAppender interface {
	// AppendJSON appends the record as one JSON object, no newline.
	AppendJSON(b []byte) []byte
}

// appendJSONString appends s quoted and escaped as encoding/json does with
// HTML escaping off: `"` and `\`, control characters (short forms where
// JSON has them), invalid UTF-8 as U+FFFD, and U+2028/U+2029.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendJSONFloat writes f as encoding/json does (ES6 number form: %f,
// or %e with an unpadded exponent outside [1e-6, 1e21)). JSON has no
// NaN or infinity, where encoding/json fails the whole record; a
// duration never is one, and null keeps the line valid if it were.
func appendJSONFloat(b []byte, f float64) []byte {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return append(b, "null"...)
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 to e-9, as encoding/json does.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

func appendUint(b []byte, v uint64) []byte { return strconv.AppendUint(b, v, 10) }
func appendInt(b []byte, v int64) []byte   { return strconv.AppendInt(b, v, 10) }

func appendBool(b []byte, v bool) []byte { return strconv.AppendBool(b, v) }

func appendOptUint32(b []byte, v *uint32) []byte {
	if v == nil {
		return append(b, "null"...)
	}
	return appendUint(b, uint64(*v))
}

func appendOptString(b []byte, v *string) []byte {
	if v == nil {
		return append(b, "null"...)
	}
	return appendJSONString(b, *v)
}

func appendOptFloat(b []byte, v *float64) []byte {
	if v == nil {
		return append(b, "null"...)
	}
	return appendJSONFloat(b, *v)
}

// appendCounts writes a map of counts with its keys sorted, as
// encoding/json does; nil is null. Summaries only: it allocates.
func appendCounts(b []byte, m map[string]uint64) []byte {
	if m == nil {
		return append(b, "null"...)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendUint(b, m[k])
	}
	return append(b, '}')
}

// appendFields writes the 4-tuple's fields (without braces): Conn is
// embedded, so its fields sit inline in each record.
func (c *Conn) appendFields(b []byte) []byte {
	b = append(b, `"laddr":`...)
	b = appendJSONString(b, c.LAddr)
	b = append(b, `,"lport":`...)
	b = appendUint(b, uint64(c.LPort))
	b = append(b, `,"raddr":`...)
	b = appendJSONString(b, c.RAddr)
	b = append(b, `,"rport":`...)
	return appendUint(b, uint64(c.RPort))
}

// appendFields writes "lost" and "lost_by_cause" (without braces).
func (l *Loss) appendFields(b []byte) []byte {
	b = append(b, `"lost":`...)
	b = appendUint(b, l.Lost)
	b = append(b, `,"lost_by_cause":{"ring_buffer":`...)
	b = appendUint(b, l.LostByCause.RingBuffer)
	b = append(b, `,"recursion":`...)
	b = appendUint(b, l.LostByCause.Recursion)
	b = append(b, `,"map_full":`...)
	b = appendUint(b, l.LostByCause.MapFull)
	return append(b, '}')
}

// appendHead writes `{"type":T,"time":X,` the records' common start.
func appendHead(b []byte, typ, time string) []byte {
	b = append(b, `{"type":`...)
	b = appendJSONString(b, typ)
	b = append(b, `,"time":`...)
	b = appendJSONString(b, time)
	return append(b, ',')
}

// appendSummaryHead writes `{"type":T,"duration_seconds":D`.
func appendSummaryHead(b []byte, typ string, d float64) []byte {
	b = append(b, `{"type":`...)
	b = appendJSONString(b, typ)
	b = append(b, `,"duration_seconds":`...)
	return appendJSONFloat(b, d)
}
