// Package testnet builds small, throwaway networks for tcplens's privileged
// tests (docs/ARCHITECTURE.md, test layer 4) and runs real TCP traffic and the tcplens
// binary in them.
//
// A Pair is two network namespaces, A and B, joined by one veth pair:
//
//	netns A                                netns B
//	  lo (up)                                lo (up)
//	  <veth A> 10.200.0.1/24  <==========>  <veth B> 10.200.0.2/24
//	           fd00:200::1/64                        fd00:200::2/64
//
// Names are unique per pair, so tests in the same or in different test
// binaries can run in parallel. Addresses are the same in every pair: they
// only exist inside the pair's namespaces, and every helper here sends
// traffic only between A and B. Everything is removed with t.Cleanup, also
// when the test fails; processes started through the package are killed by
// their PID and waited for before the namespaces go.
//
// Code runs in a namespace in one of two ways: NS.Do runs a Go function on
// a thread switched into the namespace (for sockets: a socket stays in the
// namespace it was made in, whichever thread uses it later), and NS.Command
// builds an `ip netns exec` command for programs.
//
// Every wait in the package is bounded in time, every retry in count.
package testnet

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Family selects IPv4 or IPv6 for the traffic helpers.
type Family int

const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func (f Family) String() string {
	if f == IPv6 {
		return "IPv6"
	}
	return "IPv4"
}

// Families is both, for table-driven tests.
var Families = []Family{IPv4, IPv6}

// The addresses of the two ends. They exist only inside a pair's namespaces.
var (
	addrA4 = netip.MustParseAddr("10.200.0.1")
	addrB4 = netip.MustParseAddr("10.200.0.2")
	addrA6 = netip.MustParseAddr("fd00:200::1")
	addrB6 = netip.MustParseAddr("fd00:200::2")
)

// NS is one end of a Pair: a named network namespace and its veth.
type NS struct {
	Name string // network namespace, as in `ip netns list`
	Link string // the veth inside it
	IPv4 netip.Addr
	IPv6 netip.Addr
}

// Pair is two namespaces joined by a veth pair.
type Pair struct {
	A, B *NS
}

// Addr is the end's address of the family.
func (ns *NS) Addr(f Family) netip.Addr {
	if f == IPv6 {
		return ns.IPv6
	}
	return ns.IPv4
}

// NewPair makes a namespace pair, ready for traffic: addresses set (IPv6
// without duplicate address detection, so usable at once), links and lo
// up. It is removed when the test ends.
func NewPair(t testing.TB) *Pair {
	t.Helper()
	var id string
	var err error
	// A random id makes a clash with another test's pair unlikely; a clash
	// is still caught by `ip netns add`, and retried a few times.
	for attempt := 0; attempt < 5; attempt++ {
		id = randomID()
		if err = run("ip", "netns", "add", "tcplens-"+id+"-a"); err != nil {
			continue
		}
		if err = run("ip", "netns", "add", "tcplens-"+id+"-b"); err != nil {
			run("ip", "netns", "del", "tcplens-"+id+"-a")
			continue
		}
		break
	}
	if err != nil {
		t.Fatalf("testnet: make network namespaces: %v", err)
	}
	p := &Pair{
		A: &NS{Name: "tcplens-" + id + "-a", Link: "tl" + id + "a", IPv4: addrA4, IPv6: addrA6},
		B: &NS{Name: "tcplens-" + id + "-b", Link: "tl" + id + "b", IPv4: addrB4, IPv6: addrB6},
	}
	t.Cleanup(func() { p.remove(t) })
	if err := p.makeLink(); err != nil {
		t.Fatalf("testnet: set up pair %s: %v", id, err)
	}
	p.waitLinkUp(t)
	return p
}

// makeLink makes the veth pair between A and B, with addresses, up.
func (p *Pair) makeLink() error {
	steps := [][]string{
		{"ip", "link", "add", p.A.Link, "netns", p.A.Name, "type", "veth", "peer", "name", p.B.Link, "netns", p.B.Name},
	}
	for _, ns := range []*NS{p.A, p.B} {
		steps = append(steps,
			// IPv6 addresses would go with the link on FlapLink otherwise.
			[]string{"ip", "netns", "exec", ns.Name, "sysctl", "-q", "-w",
				"net.ipv6.conf.all.keep_addr_on_down=1", "net.ipv6.conf." + ns.Link + ".keep_addr_on_down=1"},
			[]string{"ip", "-n", ns.Name, "link", "set", "lo", "up"},
			[]string{"ip", "-n", ns.Name, "addr", "add", ns.IPv4.String() + "/24", "dev", ns.Link},
			[]string{"ip", "-n", ns.Name, "-6", "addr", "add", ns.IPv6.String() + "/64", "dev", ns.Link, "nodad"},
			[]string{"ip", "-n", ns.Name, "link", "set", ns.Link, "up"},
		)
	}
	for _, s := range steps {
		if err := run(s[0], s[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// waitLinkUp waits, bounded, until both ends are operationally up (the
// link has carrier once both are up).
func (p *Pair) waitLinkUp(t testing.TB) {
	t.Helper()
	for _, ns := range []*NS{p.A, p.B} {
		ns := ns
		WaitFor(t, 5*time.Second, ns.Link+" operationally up", func() bool {
			out, err := output("ip", "-n", ns.Name, "-br", "link", "show", "dev", ns.Link)
			return err == nil && strings.Contains(out, " UP ")
		})
	}
}

// DeleteLink deletes the veth pair (both ends go), as when a container
// goes away.
func (p *Pair) DeleteLink(t testing.TB) {
	t.Helper()
	if err := run("ip", "-n", p.A.Name, "link", "del", p.A.Link); err != nil {
		t.Fatalf("testnet: delete %s: %v", p.A.Link, err)
	}
}

// RecreateLink makes the veth pair again after DeleteLink, with the same
// names and addresses (new interface indexes).
func (p *Pair) RecreateLink(t testing.TB) {
	t.Helper()
	if err := p.makeLink(); err != nil {
		t.Fatalf("testnet: recreate the veth pair: %v", err)
	}
	p.waitLinkUp(t)
}

func (p *Pair) remove(t testing.TB) {
	// Delete the link first: a namespace outlives its name while anything
	// (a leaked socket, a process) still holds it, the veth would too.
	if err := run("ip", "-n", p.A.Name, "link", "del", p.A.Link); err != nil {
		t.Logf("testnet: remove %s: %v", p.A.Link, err)
	}
	for _, ns := range []*NS{p.A, p.B} {
		if err := run("ip", "netns", "del", ns.Name); err != nil {
			t.Errorf("testnet: remove network namespace %s: %v", ns.Name, err)
		}
	}
}

func randomID() string {
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b)
}

// Do runs fn on an OS thread switched into the namespace, and switches the
// thread back after. Sockets fn makes stay in the namespace. fn runs on its
// own goroutine: it must not call t.Fatal, and goroutines it starts run
// outside the namespace.
func (ns *NS) Do(fn func() error) error {
	target, err := os.Open(filepath.Join("/run/netns", ns.Name))
	if err != nil {
		return fmt.Errorf("open network namespace %s: %w", ns.Name, err)
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open current network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter network namespace %s: %w", ns.Name, err)
			return
		}
		fnErr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// The thread stays locked: the runtime ends it with this
			// goroutine instead of reusing it in the wrong namespace.
			errc <- fmt.Errorf("return from network namespace %s: %w", ns.Name, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- fnErr
	}()
	return <-errc
}

// Command is `ip netns exec NS name args...`. ip execs the program, so the
// command's PID is the program's own.
func (ns *NS) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
}

// Run runs a short program in the namespace and returns its stdout; it
// fails the test when the program fails or runs longer than 10 s.
func (ns *NS) Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := runBounded(ns.Command(name, args...), 10*time.Second)
	if err != nil {
		t.Fatalf("testnet: in %s: %v", ns.Name, err)
	}
	return out
}

// Sysctl sets a namespaced sysctl such as net.ipv4.tcp_ecn.
func (ns *NS) Sysctl(t testing.TB, key, value string) {
	t.Helper()
	ns.Run(t, "sysctl", "-q", "-w", key+"="+value)
}

// SetLink sets the namespace's veth up or down.
func (ns *NS) SetLink(t testing.TB, up bool) {
	t.Helper()
	state := "down"
	if up {
		state = "up"
	}
	if err := run("ip", "-n", ns.Name, "link", "set", ns.Link, state); err != nil {
		t.Fatalf("testnet: %v", err)
	}
}

// FlapLink takes the veth down for d, then up again; packets sent to this
// end meanwhile are lost, which makes the peer retransmit. Addresses stay
// (keep_addr_on_down, nodad), so traffic continues once the link is back.
func (ns *NS) FlapLink(t testing.TB, d time.Duration) {
	t.Helper()
	ns.SetLink(t, false)
	time.Sleep(d)
	ns.SetLink(t, true)
}

// WaitFor polls cond every 10 ms until it holds, failing the test after
// timeout with what it waited for.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("testnet: timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func run(name string, args ...string) error {
	_, err := runBounded(exec.Command(name, args...), 10*time.Second)
	return err
}

func output(name string, args ...string) (string, error) {
	return runBounded(exec.Command(name, args...), 10*time.Second)
}

// runBounded runs cmd, killing it by PID after timeout.
func runBounded(cmd *exec.Cmd, timeout time.Duration) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("%s: %w", strings.Join(cmd.Args, " "), err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(timeout):
		cmd.Process.Kill()
		<-done
		err = fmt.Errorf("killed after %s", timeout)
	}
	if err != nil {
		return stdout.String(), fmt.Errorf("%s: %v: %s", strings.Join(cmd.Args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}
