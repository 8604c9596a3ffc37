package cli

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tcplens/tcplens/internal/probe"
)

// guardRuleSpec is a rule set as flags or a --rules file give it, before
// the addresses and durations are parsed.
type guardRuleSpec struct {
	Allow            []string `yaml:"allow"`
	Block            []string `yaml:"block"`
	DropPort         []uint   `yaml:"drop_port"`
	DropSYNPort      []uint   `yaml:"drop_syn_port"`
	SYNRequireMSS    bool     `yaml:"syn_require_mss"`
	DropSYNSignature []string `yaml:"drop_syn_signature"`
	SYNRate          float64  `yaml:"syn_rate"`
	SYNBurst         uint32   `yaml:"syn_burst"`
	SYNRateGlobal    float64  `yaml:"syn_rate_global"`
	SYNBurstGlobal   uint32   `yaml:"syn_burst_global"`
	ScanPorts        uint32   `yaml:"scan_ports"`
	ScanWindow       string   `yaml:"scan_window"`
	BlockFor         string   `yaml:"block_for"`
	DryRun           bool     `yaml:"dry_run"`
}

// build checks the spec and turns it into rules; where names the source
// of each value for messages (a flag or a file line).
func (s guardRuleSpec) build(where func(key string, i int) string) (probe.GuardRules, error) {
	var g probe.GuardRules
	var err error
	if g.Allow, err = parseCIDRs(s.Allow, func(i int) string { return where("allow", i) }); err != nil {
		return g, err
	}
	if g.Block, err = parseCIDRs(s.Block, func(i int) string { return where("block", i) }); err != nil {
		return g, err
	}
	for _, c := range []struct {
		key string
		in  []uint
		out *[]uint16
	}{{"drop_port", s.DropPort, &g.DropPorts}, {"drop_syn_port", s.DropSYNPort, &g.DropSYNPorts}} {
		for i, p := range c.in {
			if p < 1 || p > 65535 {
				return g, fmt.Errorf("%s: port %d: a port is 1 to 65535", where(c.key, i), p)
			}
			*c.out = append(*c.out, uint16(p))
		}
	}
	g.SYNRate, g.SYNBurst, g.SYNRateGlobal, g.SYNBurstGlobal = s.SYNRate, s.SYNBurst, s.SYNRateGlobal, s.SYNBurstGlobal
	if g.SYNRate > 0 && g.SYNBurst == 0 {
		g.SYNBurst = max(1, uint32(g.SYNRate)) // a second's worth
	}
	g.ScanPorts, g.DryRun, g.RequireMSS = s.ScanPorts, s.DryRun, s.SYNRequireMSS
	for i, text := range s.DropSYNSignature {
		sig, err := probe.ParseSYNSignature(text)
		if err != nil {
			return g, fmt.Errorf("%s: %v", where("drop_syn_signature", i), err)
		}
		g.DropSYNSignatures = append(g.DropSYNSignatures, sig)
	}
	if len(g.DropSYNSignatures) > probe.MaxSYNSignatures {
		return g, fmt.Errorf("%s: at most %d signatures", where("drop_syn_signature", probe.MaxSYNSignatures), probe.MaxSYNSignatures)
	}
	for _, d := range []struct {
		key string
		in  string
		out *time.Duration
	}{{"scan_window", s.ScanWindow, &g.ScanWindow}, {"block_for", s.BlockFor, &g.BlockFor}} {
		if d.in == "" {
			continue
		}
		v, err := time.ParseDuration(d.in)
		if err != nil || v <= 0 {
			return g, fmt.Errorf("%s: %q is not a positive duration", where(d.key, -1), d.in)
		}
		*d.out = v
	}
	if err := g.Validate(); err != nil {
		return g, err
	}
	return g, nil
}

func parseCIDRs(in []string, where func(int) string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for i, s := range in {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("%s: %q is not an address or CIDR", where(i), s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// loadGuardRules reads a --rules file. Every error names the file and the
// line of the offending value.
func loadGuardRules(path string) (probe.GuardRules, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return probe.GuardRules{}, fmt.Errorf("read rules: %w", err)
	}
	return parseGuardRules(path, data)
}

func parseGuardRules(path string, data []byte) (probe.GuardRules, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return probe.GuardRules{}, fmt.Errorf("%s: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var spec guardRuleSpec
	if len(root.Content) == 0 {
		return spec.build(func(string, int) string { return path })
	}
	doc := root.Content[0]
	if doc.Kind != yaml.MappingNode {
		return probe.GuardRules{}, fmt.Errorf("%s: line %d: the rules are a mapping of rule names to values", path, doc.Line)
	}
	known := map[string]bool{}
	for _, k := range []string{"allow", "block", "drop_port", "drop_syn_port", "syn_require_mss", "drop_syn_signature", "syn_rate", "syn_burst",
		"syn_rate_global", "syn_burst_global", "scan_ports", "scan_window", "block_for", "dry_run"} {
		known[k] = true
	}
	lines := map[string][]int{} // key -> line of the key, then of each list item
	for i := 0; i+1 < len(doc.Content); i += 2 {
		k, v := doc.Content[i], doc.Content[i+1]
		if !known[k.Value] {
			return probe.GuardRules{}, fmt.Errorf("%s: line %d: unknown rule %q", path, k.Line, k.Value)
		}
		ls := []int{k.Line}
		for _, item := range v.Content {
			ls = append(ls, item.Line)
		}
		lines[k.Value] = ls
	}
	if err := doc.Decode(&spec); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) && len(te.Errors) > 0 {
			return probe.GuardRules{}, fmt.Errorf("%s: %s", path, strings.TrimPrefix(te.Errors[0], "yaml: "))
		}
		return probe.GuardRules{}, fmt.Errorf("%s: %v", path, err)
	}
	g, err := spec.build(func(key string, i int) string {
		ls := lines[key]
		switch {
		case i >= 0 && i+1 < len(ls):
			return fmt.Sprintf("%s: line %d: %s", path, ls[i+1], key)
		case len(ls) > 0:
			return fmt.Sprintf("%s: line %d: %s", path, ls[0], key)
		}
		return fmt.Sprintf("%s: %s", path, key)
	})
	if err != nil && !strings.HasPrefix(err.Error(), path) {
		err = fmt.Errorf("%s: %w", path, err)
	}
	return g, err
}

// sshPeer is one SSH connection of the caller: the client's address and
// the port it reached here.
type sshPeer struct {
	client netip.Addr
	port   uint16
}

// sshPeers finds the SSH connections a deny rule could cut: the one in
// SSH_CONNECTION, and every established socket whose local port is 22.
func sshPeers() []sshPeer {
	var out []sshPeer
	if f := strings.Fields(os.Getenv("SSH_CONNECTION")); len(f) == 4 {
		a, err1 := netip.ParseAddr(f[0])
		p, err2 := strconv.ParseUint(f[3], 10, 16)
		if err1 == nil && err2 == nil {
			out = append(out, sshPeer{a.Unmap(), uint16(p)})
		}
	}
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		out = append(out, parseProcNetSSH(data)...)
	}
	return out
}

// parseProcNetSSH picks the established (st 01) sockets with local port 22
// from /proc/net/tcp{,6}: addresses there are 32-bit words in host order.
func parseProcNetSSH(data []byte) []sshPeer {
	var out []sshPeer
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Scan() // header
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || f[3] != "01" {
			continue
		}
		local, remote := strings.Split(f[1], ":"), strings.Split(f[2], ":")
		if len(local) != 2 || len(remote) != 2 || local[1] != "0016" {
			continue
		}
		raw, err := hex.DecodeString(remote[0])
		if err != nil || (len(raw) != 4 && len(raw) != 16) {
			continue
		}
		for i := 0; i+4 <= len(raw); i += 4 { // each word is little-endian on the hosts we build for
			raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
		}
		a, _ := netip.AddrFromSlice(raw)
		out = append(out, sshPeer{a.Unmap(), 22})
	}
	return out
}

// lockout says which rule of g would cut one of peers off, or "".
func lockout(g probe.GuardRules, peers []sshPeer) string {
	for _, p := range peers {
		allowed := false
		for _, a := range g.Allow {
			allowed = allowed || a.Contains(p.client)
		}
		if allowed || g.DryRun {
			continue
		}
		for _, b := range g.Block {
			if b.Contains(p.client) {
				return fmt.Sprintf("--block %s covers your SSH client %s", b, p.client)
			}
		}
		for _, port := range g.DropPorts {
			if port == p.port {
				return fmt.Sprintf("--drop-port %d is your SSH connection's port (from %s)", port, p.client)
			}
		}
		for _, port := range g.DropSYNPorts {
			if port == p.port {
				return fmt.Sprintf("--drop-syn-port %d stops new SSH connections (yours comes from %s)", port, p.client)
			}
		}
	}
	return ""
}
