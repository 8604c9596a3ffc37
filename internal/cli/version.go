package cli

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/pflag"
)

// Version and Commit are set at build time by the Makefile:
//
//	go build -ldflags "-X github.com/tcplens/tcplens/internal/cli.Version=v1.2.3 -X github.com/tcplens/tcplens/internal/cli.Commit=abc..."
//
// Without them, version falls back to what the Go toolchain stamped into
// the binary (module version, vcs.revision), which is missing for
// `go build` outside a git checkout, with -buildvcs=false, and for
// `go run`/`go test`.
var (
	Version = ""
	Commit  = ""
)

func init() {
	register("version", "print the version and the commit it was built from", runVersion)
}

func runVersion(ctx context.Context, env Env, args []string) error {
	fs := pflag.NewFlagSet("version", pflag.ContinueOnError)
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	version, commit, dirty := versionInfo()
	if dirty {
		commit += "-dirty"
	}
	_, err := fmt.Fprintf(env.Stdout, "tcplens %s (commit %s, %s %s/%s)\n", version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return err
}

// versionInfo is the version and commit from -ldflags, else from the
// build info, else "(devel)" and "unknown".
func versionInfo() (version, commit string, dirty bool) {
	version, commit = Version, Commit
	if bi, ok := debug.ReadBuildInfo(); ok {
		if version == "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if commit == "" {
					commit = s.Value
				}
			case "vcs.modified":
				dirty = Commit == "" && s.Value == "true"
			}
		}
	}
	if version == "" {
		version = "(devel)"
	}
	if commit == "" {
		commit = "unknown"
	}
	return version, commit, dirty
}
