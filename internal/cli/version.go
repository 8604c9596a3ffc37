package cli

import (
	"context"
	"fmt"
	"runtime/debug"

	"github.com/spf13/pflag"
)

// Version is set at build time with -ldflags "-X github.com/tcplens/tcplens/internal/cli.Version=v1.2.3".
var Version = ""

func init() {
	register("version", "print the version", runVersion)
}

func runVersion(ctx context.Context, env Env, args []string) error {
	fs := pflag.NewFlagSet("version", pflag.ContinueOnError)
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	v := Version
	if v == "" {
		v = "devel"
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" && len(s.Value) >= 12 {
					v = "devel+" + s.Value[:12]
				}
			}
		}
	}
	fmt.Fprintf(env.Stdout, "tcplens %s\n", v)
	return nil
}
