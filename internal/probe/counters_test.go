package probe

import (
	"reflect"
	"testing"
)

// SubCounters works on the struct as an array of words: every field,
// found by reflection, must be covered, and nothing beyond them.
func TestSubCountersCoversEveryField(t *testing.T) {
	var a, b FlagCounters
	av, bv := reflect.ValueOf(&a).Elem(), reflect.ValueOf(&b).Elem()
	n := 0
	for i := 0; i < av.NumField(); i++ {
		if av.Type().Field(i).Name == "_" {
			continue
		}
		av.Field(i).SetUint(uint64(100 + 10*i))
		bv.Field(i).SetUint(uint64(i))
		n++
	}
	d := reflect.ValueOf(SubCounters(a, b))
	for i := 0; i < d.NumField(); i++ {
		if d.Type().Field(i).Name == "_" {
			continue
		}
		if got, want := d.Field(i).Uint(), uint64(100+9*i); got != want {
			t.Errorf("%s: %d, want %d", d.Type().Field(i).Name, got, want)
		}
	}
	if n != len(counterWords(&a)) {
		t.Errorf("%d counter fields, %d words", n, len(counterWords(&a)))
	}
}
