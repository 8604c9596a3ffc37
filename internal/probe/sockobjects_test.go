package probe

import (
	"slices"
	"testing"
)

// Every program a socket-path object's C defines is attached by its
// descriptor, and the descriptor names no program the object lacks: the
// compiled object, not the descriptor, is the oracle.
func TestSockObjectsMatchTheirObjects(t *testing.T) {
	for _, o := range sockObjects {
		spec, err := o.Spec()
		if err != nil {
			t.Fatal(err)
		}
		var listed []string
		for _, p := range o.programs {
			listed = append(listed, p.prog)
			if spec.Programs[p.prog] == nil {
				t.Errorf("%s: descriptor names program %s, which the object lacks", o.Command, p.prog)
			}
		}
		for name := range spec.Programs {
			if !slices.Contains(listed, name) {
				t.Errorf("%s: the object's program %s is attached nowhere", o.Command, name)
			}
		}
	}
}

// What doctor and the privilege check read is derived for every command,
// and every tracepoint an object uses is one doctor tries.
func TestCommandTablesDerivedFromObjects(t *testing.T) {
	for _, o := range sockObjects {
		if len(CommandNeeds[o.Command]) == 0 || len(CommandCaps[o.Command]) == 0 {
			t.Errorf("%s: no needs or capabilities derived", o.Command)
		}
		for _, tp := range o.Tracepoints() {
			if !slices.Contains(Tracepoints, tp) {
				t.Errorf("%s: tracepoint %s missing from Tracepoints", o.Command, tp)
			}
		}
	}
	if !slices.Contains(CommandNeeds["resets"], TPSendReset.Feature()) {
		t.Errorf("resets does not need %s: %v", TPSendReset, CommandNeeds["resets"])
	}
	if slices.Contains(CommandNeeds["states"], TPSockSendLength.Feature()) {
		t.Errorf("states needs the optional %s", TPSockSendLength)
	}
	if len(CommandExtras["states"]) != 2 || len(CommandExtras["resets"]) != 1 {
		t.Errorf("extras: states %v, resets %v", CommandExtras["states"], CommandExtras["resets"])
	}
}
