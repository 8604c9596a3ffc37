package output

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
)

// appenders is every record with a hand-written AppendJSON: the oracle
// tests below fill each with random values and compare with encoding/json.
func appenders() []JSONAppender {
	return []JSONAppender{
		&RetransmitRecord{}, &RetransmitsRecord{}, &RetransSummary{},
		&ResetRecord{}, &ResetSummary{},
		&StateRecord{}, &LifetimeRecord{}, &StatesSummary{},
		&RTTRecord{}, &RTTHistogramRecord{}, &RTTSummary{},
		&DropRecord{}, &DropSummary{},
	}
}

// nastyStrings are what string escaping gets wrong: quotes, backslashes,
// control characters with and without short forms, DEL, invalid UTF-8,
// U+2028/U+2029, HTML characters (not escaped: JSONLines turns that off),
// multi-byte runes and a NUL.
var nastyStrings = []string{
	"", "ESTABLISHED", "tcp_v4_rcv+0x91", "fd00:200::1", `a"b`, `back\slash`, "\b\f\n\r\t",
	"\x00\x01\x1f", "\x7f", "\xff\xfe", "a\xc3", "\u2028\u2029", "<&>", "ksoftirqd/0", "日本語", "\U0001F600",
	"\xed\xa0\x80", // a UTF-16 surrogate encoded in UTF-8: invalid
}

func randString(r *rand.Rand) string {
	if r.IntN(2) == 0 {
		return nastyStrings[r.IntN(len(nastyStrings))]
	}
	b := make([]byte, r.IntN(24))
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return string(b)
}

func randFloat(r *rand.Rand) float64 {
	switch r.IntN(4) {
	case 0:
		return []float64{0, math.Copysign(0, -1), 1e-7, 1e21, 1e-6, 123.456, 0.1, 5e-324, math.MaxFloat64}[r.IntN(9)]
	case 1:
		return float64(r.Uint64()) / 1e3
	}
	for {
		// Any finite bit pattern: JSON has no NaN or infinity.
		if f := math.Float64frombits(r.Uint64()); !math.IsNaN(f) && !math.IsInf(f, 0) {
			return f
		}
	}
}

// fill sets every field of v (recursively) to a random value; strings
// from str, floats from flt.
func fill(v reflect.Value, r *rand.Rand, str func() string, flt func() float64) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(str())
	case reflect.Bool:
		v.SetBool(r.IntN(2) == 0)
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uint:
		x := r.Uint64()
		if r.IntN(3) == 0 {
			x = uint64(r.IntN(3)) // small values and 0 (omitempty edges)
		}
		v.SetUint(x) // truncated to the field's width
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Int:
		v.SetInt(int64(r.Uint64()) >> r.IntN(64))
	case reflect.Float64:
		v.SetFloat(flt())
	case reflect.Pointer:
		if r.IntN(3) == 0 {
			v.SetZero()
			return
		}
		p := reflect.New(v.Type().Elem())
		fill(p.Elem(), r, str, flt)
		v.Set(p)
	case reflect.Slice:
		if r.IntN(4) == 0 {
			v.SetZero()
			return
		}
		s := reflect.MakeSlice(v.Type(), r.IntN(4), r.IntN(4)+4)
		for i := range s.Len() {
			fill(s.Index(i), r, str, flt)
		}
		v.Set(s)
	case reflect.Map:
		if r.IntN(4) == 0 {
			v.SetZero()
			return
		}
		m := reflect.MakeMap(v.Type())
		for range r.IntN(5) {
			k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
			fill(k, r, str, flt)
			fill(e, r, str, flt)
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	case reflect.Struct:
		for i := range v.NumField() {
			fill(v.Field(i), r, str, flt)
		}
	default:
		panic("fill: no random values for " + v.Type().String())
	}
}

// checkSame compares a's AppendJSON with encoding/json as JSONLines
// configures it (HTML escaping off): the same bytes, and therefore the
// same keys and values once decoded, which is checked too.
func checkSame(t *testing.T, a JSONAppender) {
	t.Helper()
	var want bytes.Buffer
	enc := json.NewEncoder(&want)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(a); err != nil {
		t.Fatalf("encoding/json: %v", err)
	}
	got := append(a.AppendJSON(nil), '\n')
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("%T:\nappender      %s\nencoding/json %s", a, got, want.Bytes())
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%T: appender's output does not decode: %v\n%s", a, err, got)
	}
	if err := json.Unmarshal(want.Bytes(), &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("%T decodes differently:\nappender      %v\nencoding/json %v", a, g, w)
	}
}

func TestAppendersMatchEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, a := range appenders() {
		for range 2000 {
			fill(reflect.ValueOf(a).Elem(), r, func() string { return randString(r) }, func() float64 { return randFloat(r) })
			checkSame(t, a)
		}
	}
}

// TestAppendersCoverEveryField fails when a field is added to a record
// but not to its AppendJSON: with every field set (no nil, no empty
// omitempty value), both encoders must name the same keys.
func TestAppendersCoverEveryField(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, a := range appenders() {
		v := reflect.ValueOf(a).Elem()
		fill(v, r, func() string { return "x" }, func() float64 { return 1.5 })
		setAll(v)
		checkSame(t, a)
	}
}

// setAll makes nil pointers, slices and maps non-empty, so that no field
// is left out by omitempty.
func setAll(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
	case reflect.Slice:
		if v.Len() == 0 {
			v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		}
	case reflect.Map:
		if v.Len() == 0 {
			m := reflect.MakeMap(v.Type())
			m.SetMapIndex(reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem())
			v.Set(m)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			setAll(v.Field(i))
		}
	case reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Int32:
		if v.IsZero() && v.CanSet() {
			if v.CanUint() {
				v.SetUint(1)
			} else {
				v.SetInt(1)
			}
		}
	case reflect.String:
		if v.Len() == 0 {
			v.SetString("x")
		}
	}
}

// TestAppendJSONNonFinite: JSON has no NaN or infinity; encoding/json
// fails the record, the appender writes null and the line stays valid.
func TestAppendJSONNonFinite(t *testing.T) {
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		b := (&RetransSummary{Type: "summary", DurationSeconds: f}).AppendJSON(nil)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil || m["duration_seconds"] != nil {
			t.Fatalf("%v: %s (%v)", f, b, err)
		}
	}
}

// TestEmitUsesAppenders: JSONLines writes a record with an appender
// through it, without allocating once its buffer exists.
func TestEmitUsesAppenders(t *testing.T) {
	var buf bytes.Buffer
	j := NewJSONLines(&buf)
	rec := &RetransmitRecord{Type: "retransmit", Time: "2026-11-28T05:00:00.000000001Z",
		Conn: Conn{LAddr: "10.0.0.1", LPort: 1, RAddr: "10.0.0.2", RPort: 2}, Comm: "x", State: "ESTABLISHED", Kind: "data"}
	allocs := testing.AllocsPerRun(1000, func() {
		if err := j.Emit(rec); err != nil {
			t.Fatal(err)
		}
		if buf.Len() > 1<<20 {
			j.Flush()
			buf.Reset()
		}
	})
	if allocs != 0 {
		t.Fatalf("Emit allocates %.1f times per record", allocs)
	}
}

// FuzzAppenders: every string and float field of every record from the
// fuzzer, the rest random from its seed; the appender must write what
// encoding/json writes.
func FuzzAppenders(f *testing.F) {
	for i, s := range nastyStrings {
		f.Add(s, 1.5, uint64(i))
	}
	f.Fuzz(func(t *testing.T, s string, fl float64, seed uint64) {
		if math.IsNaN(fl) || math.IsInf(fl, 0) {
			fl = 0
		}
		r := rand.New(rand.NewPCG(seed, seed))
		for _, a := range appenders() {
			fill(reflect.ValueOf(a).Elem(), r, func() string { return s }, func() float64 { return fl })
			checkSame(t, a)
		}
	})
}
