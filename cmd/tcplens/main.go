// Command tcplens inspects TCP traffic with eBPF. See README.md.
package main

import (
	"os"

	"github.com/tcplens/tcplens/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], cli.Env{Stdout: os.Stdout, Stderr: os.Stderr}))
}
