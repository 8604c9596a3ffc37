// Package deploy holds no code: its directory holds the files that run
// `tcplens agent` on a fleet (a Kubernetes DaemonSet, a systemd unit, an
// example config), and its tests check them with tools that know their
// schemas and against the capabilities internal/probe says the agent needs.
package deploy
