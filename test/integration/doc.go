// Package integration holds tcplens's integration tests (docs/ARCHITECTURE.md, test
// layer 4): the built tcplens binary runs in a network namespace made by
// internal/testnet, real TCP connections cross a veth pair, and the JSON it
// prints is checked against what the test caused and the kernel's own
// counters.
//
// They live in their own package, not in internal/cli, because they test
// the binary from outside, through its CLI contract only (flags, JSON
// lines, exit codes, --ready-file, signals), as scripts and users see it;
// and so `go test ./internal/cli` stays a fast unit-test run that does not
// build the binary or need root.
package integration
