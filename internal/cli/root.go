// Package cli implements tcplens's commands: one file per subcommand, all
// sharing the flag conventions and exit codes in common.go.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/tcplens/tcplens/internal/output"
	"github.com/tcplens/tcplens/internal/probe"
)

// Exit codes, the CLI contract.
const (
	ExitOK      = 0
	ExitRuntime = 1
	ExitUsage   = 2
)

// Env is what a command may touch of the outside world.
type Env struct {
	Stdout, Stderr io.Writer
}

type command struct {
	summary string
	run     func(ctx context.Context, env Env, args []string) error
}

var commands = map[string]command{}

func register(name, summary string, run func(context.Context, Env, []string) error) {
	commands[name] = command{summary: summary, run: run}
}

// Main runs tcplens with args (without the program name) and returns the
// process exit code.
//
// Every write to Env.Stdout is checked: the first failure stops the run
// and makes it exit 1, since output silently lost is a wrong answer.
func Main(args []string, env Env) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stdout := output.NewCheckedWriter(env.Stdout, func(error) { cancel() })
	env.Stdout = stdout
	code, err := run(ctx, args, env)
	werr := stdout.Err()
	if werr != nil && (err == nil || !errors.Is(err, werr)) {
		// Said even after another error: it is why output is missing.
		fmt.Fprintf(env.Stderr, "tcplens: write output: %v\n", werr)
		if code == ExitOK {
			code = ExitRuntime
		}
	}
	return code
}

// run runs one command and returns its exit code and the error it has
// already reported, if any.
func run(ctx context.Context, args []string, env Env) (int, error) {
	name := "top" // the default command
	if len(args) > 0 {
		name = args[0]
	}
	switch name {
	case "-h", "--help", "help":
		printUsage(env.Stdout)
		return ExitOK, nil
	case "--version", "-V":
		name = "version"
	}
	if len(args) > 0 && name[0] != '-' {
		args = args[1:]
	} else {
		// No command, or flags without one: they are top's.
		name = "top"
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(env.Stderr, "tcplens: unknown command %q (run 'tcplens help' for the list)\n", name)
		return ExitUsage, nil
	}

	err := cmd.run(ctx, env, args)
	if err == nil || errors.Is(err, errHelp) {
		return ExitOK, nil
	}
	fmt.Fprintf(env.Stderr, "tcplens %s: %v\n", name, err)
	return exitCode(err), err
}

func exitCode(err error) int {
	var uerr usageError
	switch {
	case errors.As(err, &uerr),
		errors.Is(err, probe.ErrPrivileges),
		errors.Is(err, probe.ErrUnsupported):
		return ExitUsage
	case errors.Is(err, errNotReady):
		return ExitRuntime
	}
	return ExitRuntime
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "tcplens inspects TCP traffic with eBPF.")
	fmt.Fprintln(w, "\nUsage: tcplens <command> [flags]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-9s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'tcplens <command> --help' for its flags. Exit codes: 0 ok, 1 runtime failure, 2 bad usage or input.")
}
