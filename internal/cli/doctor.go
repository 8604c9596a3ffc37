package cli

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/pflag"

	"github.com/tcplens/tcplens/internal/output"
	"github.com/tcplens/tcplens/internal/probe"
)

func init() {
	register("doctor", "what this kernel offers and what each command needs", runDoctor)
}

// doctorCheck and doctorCommand are doctor's JSON lines.
type doctorCheck struct {
	Type   string `json:"type"` // "check"
	Name   string `json:"name"`
	Status string `json:"status"` // "ok", "missing", "info" or "warning"
	Detail string `json:"detail"`
}

type doctorCommand struct {
	Type    string   `json:"type"` // "command"
	Command string   `json:"command"`
	Ready   bool     `json:"ready"`
	Missing []string `json:"missing"`
	// Without: what the command runs without on this kernel, such as
	// "reset reasons"; omitted when nothing.
	Without []string `json:"without,omitempty"`
}

func runDoctor(ctx context.Context, env Env, args []string) error {
	fs := pflag.NewFlagSet("doctor", pflag.ContinueOnError)
	var format string
	fs.StringVarP(&format, "output", "o", "text", "output format: text or json (one object per line)")
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	f, err := output.ParseFormat(format)
	if err != nil {
		return usageError{err.Error()}
	}
	// Not fatal here: the bpf() check below says what works and what not.
	_ = prepareBPF()

	checks := probe.RunChecks()
	missing := probe.Missing(checks)
	for c := range probe.CommandCaps {
		for _, cp := range probe.MissingCaps(c) {
			missing[c] = append(missing[c], probe.Feature(cp.Name))
		}
	}
	degraded := probe.Degraded(checks)
	cmds := make([]string, 0, len(probe.CommandNeeds))
	for c := range probe.CommandNeeds {
		cmds = append(cmds, c)
	}
	sort.Strings(cmds)

	if f == output.JSON {
		out := output.NewJSONLines(env.Stdout)
		for _, c := range checks {
			out.Emit(doctorCheck{Type: "check", Name: c.Name, Status: checkStatus(c), Detail: c.Detail})
		}
		for _, c := range cmds {
			m := featureNames(missing[c])
			out.Emit(doctorCommand{Type: "command", Command: c, Ready: len(m) == 0, Missing: m, Without: degraded[c]})
		}
		if err := out.Flush(); err != nil {
			return err
		}
	} else {
		t := output.NewTextTable(env.Stdout)
		t.Row("CHECK", "STATUS", "DETAIL")
		for _, c := range checks {
			t.Row(c.Name, checkStatus(c), c.Detail)
		}
		t.Flush()
		fmt.Fprintln(env.Stdout)
		t = output.NewTextTable(env.Stdout)
		t.Row("COMMAND", "READY", "MISSING")
		for _, c := range cmds {
			m := featureNames(missing[c])
			ready, list := "yes", "-"
			if len(m) > 0 {
				ready, list = "no", strings.Join(m, ", ")
			} else if w := degraded[c]; len(w) > 0 {
				ready = "yes, without " + strings.Join(w, ", ")
			}
			t.Row(c, ready, list)
		}
		t.Flush()
	}

	var unready []string
	for _, c := range cmds {
		if len(missing[c]) > 0 {
			unready = append(unready, c)
		}
	}
	if len(unready) > 0 {
		return fmt.Errorf("%w on this kernel or for this user: %s", errNotReady, strings.Join(unready, ", "))
	}
	return nil
}

func checkStatus(c probe.Check) string {
	switch {
	case c.Warn:
		return "warning"
	case c.Info:
		return "info"
	case c.OK:
		return "ok"
	}
	return "missing"
}

func featureNames(fs []probe.Feature) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = string(f)
	}
	return out
}
