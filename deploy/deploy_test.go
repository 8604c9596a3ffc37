package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/tcplens/tcplens/internal/probe"
	"github.com/tcplens/tcplens/internal/testnet"
	"github.com/tcplens/tcplens/internal/testutil"
)

const (
	daemonSetFile = "daemonset.yaml"
	unitFile      = "tcplens-agent.service"
	configFile    = "agent.yaml"
	metricsPort   = 9464
)

func TestMain(m *testing.M) {
	code := m.Run()
	testnet.RemoveBuild()
	os.Exit(code)
}

func read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// agentCaps is internal/probe's set for the agent, without the CAP_
// prefix, sorted: the one source both files must match.
func agentCaps() []string {
	var out []string
	for _, c := range probe.AgentCaps {
		out = append(out, strings.TrimPrefix(c.Name, "CAP_"))
	}
	slices.Sort(out)
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// TestAgentCapsCoverBothPaths: the agent runs the packet path and the
// socket path, so its set holds each of theirs.
func TestAgentCapsCoverBothPaths(t *testing.T) {
	for name, set := range map[string][]probe.Capability{
		"packet path": probe.PacketPathCaps, "socket path": probe.SocketPathCaps,
	} {
		for _, c := range set {
			if !slices.Contains(probe.AgentCaps, c) {
				t.Errorf("AgentCaps lacks %s, which the %s needs", c.Name, name)
			}
		}
	}
	if len(slices.Compact(sorted(agentCaps()))) != len(probe.AgentCaps) {
		t.Errorf("AgentCaps has duplicates: %v", agentCaps())
	}
}

// decodeDaemonSet decodes strictly: a field the Kubernetes API types do not
// have (a typo, a wrong level) is an error, as `kubectl apply
// --validate=strict` would refuse it.
func decodeDaemonSet(data []byte) (*appsv1.DaemonSet, error) {
	var ds appsv1.DaemonSet
	if err := yaml.UnmarshalStrict(data, &ds); err != nil {
		return nil, err
	}
	return &ds, nil
}

func TestDaemonSetStrictDecodeRefusesUnknownFields(t *testing.T) {
	data := read(t, daemonSetFile)
	bad := bytes.Replace(data, []byte("hostNetwork: true"), []byte("hostNetwrok: true"), 1)
	if bytes.Equal(bad, data) {
		t.Fatal("no hostNetwork line to misspell")
	}
	if _, err := decodeDaemonSet(bad); err == nil || !strings.Contains(err.Error(), "hostNetwrok") {
		t.Errorf("misspelt field: error %v, want one naming hostNetwrok", err)
	}
}

func TestDaemonSet(t *testing.T) {
	ds, err := decodeDaemonSet(read(t, daemonSetFile))
	if err != nil {
		t.Fatalf("%s: %v", daemonSetFile, err)
	}
	if ds.APIVersion != "apps/v1" || ds.Kind != "DaemonSet" {
		t.Errorf("apiVersion %q kind %q, want apps/v1 DaemonSet", ds.APIVersion, ds.Kind)
	}
	// What the API server would refuse: a selector that does not select
	// the template's pods.
	for k, v := range ds.Spec.Selector.MatchLabels {
		if ds.Spec.Template.Labels[k] != v {
			t.Errorf("selector %s=%s does not match the template's labels %v", k, v, ds.Spec.Template.Labels)
		}
	}
	pod := ds.Spec.Template.Spec
	if !pod.HostNetwork || !pod.HostPID {
		t.Errorf("hostNetwork %v hostPID %v, want both: the node's interfaces and every process's namespace", pod.HostNetwork, pod.HostPID)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]

	sc := c.SecurityContext
	if sc == nil || sc.Capabilities == nil {
		t.Fatal("no securityContext.capabilities")
	}
	if sc.Privileged == nil || *sc.Privileged {
		t.Error("privileged must be set, to false")
	}
	var add []string
	for _, a := range sc.Capabilities.Add {
		add = append(add, string(a))
	}
	if got, want := sorted(add), agentCaps(); !slices.Equal(got, want) {
		t.Errorf("capabilities.add %v, want exactly internal/probe's AgentCaps %v", got, want)
	}
	if !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("capabilities.drop %v, want [ALL]", sc.Capabilities.Drop)
	}
	if sc.RunAsUser == nil || *sc.RunAsUser != 0 {
		t.Error("runAsUser must be 0: /proc/PID/fd and /proc/PID/ns/net are root's, and the agent reads them as root")
	}
	if slices.Contains(add, "SYS_ADMIN") && sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation {
		t.Error("Kubernetes refuses allowPrivilegeEscalation: false with SYS_ADMIN added")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("readOnlyRootFilesystem should be true: the agent writes nothing in its image")
	}

	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, okr := c.Resources.Requests[res]
		lim, okl := c.Resources.Limits[res]
		if !okr || !okl {
			t.Errorf("%s: request set %v, limit set %v; want both", res, okr, okl)
			continue
		}
		if req.Cmp(lim) > 0 {
			t.Errorf("%s: request %s above limit %s", res, req.String(), lim.String())
		}
	}

	if !slices.Equal(c.Args[:1], []string{"agent"}) || !hasFlagValue(c.Args, "--listen", "0.0.0.0:9464") {
		t.Errorf("args %v, want agent --listen 0.0.0.0:9464 (the default listens on loopback only)", c.Args)
	}
	var port int32
	for _, p := range c.Ports {
		if p.Name == "metrics" {
			port = p.ContainerPort
		}
	}
	if port != metricsPort {
		t.Errorf("containerPort named metrics: %d, want %d", port, metricsPort)
	}
	ann := ds.Spec.Template.Annotations
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != "9464" || ann["prometheus.io/path"] != "/metrics" {
		t.Errorf("pod annotations %v, want prometheus.io/scrape true, port 9464, path /metrics", ann)
	}
	for probeName, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		want := map[string]string{"liveness": "/healthz", "readiness": "/readyz"}[probeName]
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != want {
			t.Errorf("%s probe: want an HTTP GET of %s", probeName, want)
		}
	}

	// The mounts the agent reads: BTF from the host.
	volumes := map[string]*corev1.HostPathVolumeSource{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v.HostPath
	}
	mounted := map[string]bool{}
	for _, m := range c.VolumeMounts {
		hp := volumes[m.Name]
		if hp == nil {
			t.Errorf("mount %s: no hostPath volume of that name", m.Name)
			continue
		}
		if !m.ReadOnly {
			t.Errorf("mount %s at %s: want readOnly", m.Name, m.MountPath)
		}
		if hp.Path != m.MountPath {
			t.Errorf("mount %s: host %s at %s, want the same path", m.Name, hp.Path, m.MountPath)
		}
		mounted[m.MountPath] = true
	}
	for _, p := range []string{"/sys/kernel/btf"} {
		if !mounted[p] {
			t.Errorf("%s not mounted from the host", p)
		}
	}
}

func hasFlagValue(args []string, flag, value string) bool {
	for i, a := range args {
		if a == flag+"="+value || (a == flag && i+1 < len(args) && args[i+1] == value) {
			return true
		}
	}
	return false
}

// unitValues are the values of key in the unit's lines (key=value).
func unitValues(unit []byte, key string) []string {
	var out []string
	for _, line := range strings.Split(string(unit), "\n") {
		if v, ok := strings.CutPrefix(line, key+"="); ok {
			out = append(out, v)
		}
	}
	return out
}

func TestUnitCapabilities(t *testing.T) {
	unit := read(t, unitFile)
	for _, key := range []string{"CapabilityBoundingSet", "AmbientCapabilities"} {
		vals := unitValues(unit, key)
		if len(vals) != 1 {
			t.Errorf("%s: %d lines, want 1", key, len(vals))
			continue
		}
		var got []string
		for _, c := range strings.Fields(vals[0]) {
			got = append(got, strings.TrimPrefix(c, "CAP_"))
		}
		if want := agentCaps(); !slices.Equal(sorted(got), want) {
			t.Errorf("%s=%s, want exactly internal/probe's AgentCaps %v", key, vals[0], want)
		}
	}
	for key, want := range map[string]string{
		"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
		"ProtectKernelModules": "yes", "LockPersonality": "yes", "MemoryDenyWriteExecute": "yes",
		"SystemCallArchitectures": "native", "RestrictAddressFamilies": "AF_NETLINK AF_INET AF_INET6 AF_UNIX",
		"ExecReload": "/bin/kill -HUP $MAINPID",
	} {
		if got := unitValues(unit, key); !slices.Equal(got, []string{want}) {
			t.Errorf("%s=%v, want %s", key, got, want)
		}
	}
}

// systemdAnalyze finds systemd-analyze, skipping (or failing where tools
// are required) without it.
func systemdAnalyze(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("systemd-analyze")
	if err != nil {
		testutil.SkipUnlessRequired(t, "systemd-analyze not found (apt-get install systemd)")
	}
	return bin
}

// verifyUnit runs `systemd-analyze verify` on a copy of the unit whose
// ExecStart names bin (verify refuses a command that does not exist). It
// returns verify's complaints: systemd only warns about unknown keys and
// bad values, with exit status 0, so any output at all is a complaint.
func verifyUnit(t *testing.T, unit []byte, bin string) string {
	t.Helper()
	if !bytes.Contains(unit, []byte("ExecStart=/usr/local/bin/tcplens ")) {
		t.Fatal("unit's ExecStart is not /usr/local/bin/tcplens")
	}
	unit = bytes.Replace(unit, []byte("ExecStart=/usr/local/bin/tcplens "), []byte("ExecStart="+bin+" "), 1)
	path := filepath.Join(t.TempDir(), unitFile)
	if err := os.WriteFile(path, unit, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(systemdAnalyze(t), "verify", "--man=no", path)
	out, err := cmd.CombinedOutput()
	if err != nil && len(out) == 0 {
		return err.Error()
	}
	return strings.TrimSpace(string(out))
}

func TestUnitVerify(t *testing.T) {
	systemdAnalyze(t)
	bin := testnet.Tcplens(t)
	unit := read(t, unitFile)
	if out := verifyUnit(t, unit, bin); out != "" {
		t.Errorf("systemd-analyze verify %s:\n%s", unitFile, out)
	}
	// The oracle can fail: a misspelt key and a bad value are reported.
	bad := bytes.Replace(unit, []byte("ProtectHome=yes"), []byte("ProtectHome=yess\nProtectHomeX=yes"), 1)
	out := verifyUnit(t, bad, bin)
	if !strings.Contains(out, "ProtectHomeX") || !strings.Contains(out, "yess") {
		t.Errorf("systemd-analyze verify of a unit with a misspelt key and a bad value said %q", out)
	}
}

// TestUnitSyscallFilter: the syscalls the agent makes beyond an ordinary
// service's are in the unit's SystemCallFilter, by systemd's own
// definition of its groups (`systemd-analyze syscall-filter`).
func TestUnitSyscallFilter(t *testing.T) {
	bin := systemdAnalyze(t)
	vals := unitValues(read(t, unitFile), "SystemCallFilter")
	if len(vals) != 1 {
		t.Fatalf("SystemCallFilter: %d lines, want 1", len(vals))
	}
	allowed := map[string]bool{}
	expanded := map[string]bool{}
	var expand func(entry string)
	expand = func(entry string) {
		if !strings.HasPrefix(entry, "@") {
			allowed[entry] = true
			return
		}
		if expanded[entry] {
			return
		}
		expanded[entry] = true
		out, err := exec.Command(bin, "syscall-filter", "--no-pager", entry).Output()
		if err != nil {
			t.Fatalf("systemd-analyze syscall-filter %s: %v", entry, err)
		}
		// The first line is the group's own name, then its members, one a
		// line: system calls and nested groups.
		for i, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); i > 0 && len(f) == 1 && !strings.HasPrefix(f[0], "#") {
				expand(f[0])
			}
		}
	}
	for _, entry := range strings.Fields(vals[0]) {
		expand(entry)
	}
	// bpf: maps, programs and raw tracepoint links; setns: sock_diag in
	// each namespace; socket, sendmsg, recvmsg: netlink; mmap: the ring
	// buffers; prlimit64: RLIMIT_MEMLOCK on kernels before 5.11.
	for _, sc := range []string{"bpf", "ioctl", "setns", "socket", "sendmsg", "recvmsg", "mmap", "prlimit64", "epoll_pwait", "clone"} {
		if !allowed[sc] {
			t.Errorf("SystemCallFilter=%s does not allow %s", vals[0], sc)
		}
	}
	if !allowed["bpf"] || allowed["kexec_load"] {
		t.Errorf("the group expansion is off: bpf %v, kexec_load %v", allowed["bpf"], allowed["kexec_load"])
	}
}

var flagRE = regexp.MustCompile(`--([a-z0-9][a-z0-9-]*)`)

// agentFlags are the long flags `tcplens agent --help` lists.
func agentFlags(t *testing.T) map[string]bool {
	t.Helper()
	out, err := exec.Command(testnet.Tcplens(t), "agent", "--help").CombinedOutput()
	if err != nil && bytes.Contains(out, []byte(`unknown command "agent"`)) {
		testutil.SkipUnlessRequired(t, "this tcplens has no agent command yet: "+strings.TrimSpace(string(out)))
	}
	if err != nil {
		t.Fatalf("tcplens agent --help: %v: %s", err, out)
	}
	flags := map[string]bool{}
	for _, m := range flagRE.FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	return flags
}

var configKeyRE = regexp.MustCompile(`(?m)^#?([a-z][a-z0-9-]*):`)

// TestFlagsExist: every flag the DaemonSet and the unit pass, and every
// key of the example config (its keys are the flags' long names), is a
// flag of `tcplens agent`; and every flag of the agent but --help and
// --config has its key in the example.
func TestFlagsExist(t *testing.T) {
	flags := agentFlags(t)
	ds, err := decodeDaemonSet(read(t, daemonSetFile))
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]string{}
	for _, a := range ds.Spec.Template.Spec.Containers[0].Args {
		if m := flagRE.FindStringSubmatch(a); m != nil && strings.HasPrefix(a, "--") {
			used[m[1]] = daemonSetFile
		}
	}
	for _, exec := range unitValues(read(t, unitFile), "ExecStart") {
		for _, f := range strings.Fields(exec) {
			if m := flagRE.FindStringSubmatch(f); m != nil && strings.HasPrefix(f, "--") {
				used[m[1]] = unitFile
			}
		}
	}
	for f, where := range used {
		if !flags[f] {
			t.Errorf("%s passes --%s, which tcplens agent does not have", where, f)
		}
	}

	cfg := read(t, configFile)
	var parsed map[string]any
	if err := yaml.UnmarshalStrict(cfg, &parsed); err != nil {
		t.Fatalf("%s: %v", configFile, err)
	}
	keys := map[string]bool{}
	for _, m := range configKeyRE.FindAllSubmatch(cfg, -1) {
		keys[string(m[1])] = true
	}
	for k := range keys {
		if !flags[k] {
			t.Errorf("%s has key %s, which is no flag of tcplens agent", configFile, k)
		}
	}
	for f := range flags {
		if f != "help" && f != "config" && !keys[f] {
			t.Errorf("%s does not show option %s", configFile, f)
		}
	}
}

// TestConfigExampleParses: with every option uncommented the example is
// still one YAML mapping with the keys it documents.
func TestConfigExampleParses(t *testing.T) {
	cfg := read(t, configFile)
	var lines []string
	for _, line := range strings.Split(string(cfg), "\n") {
		// Option lines and their list items are commented with one "#" and
		// no space; prose has "# ".
		if strings.HasPrefix(line, "#") && !strings.HasPrefix(line, "# ") && line != "#" {
			line = line[1:]
		}
		lines = append(lines, line)
	}
	var parsed map[string]any
	if err := yaml.UnmarshalStrict([]byte(strings.Join(lines, "\n")), &parsed); err != nil {
		t.Fatalf("%s uncommented: %v", configFile, err)
	}
	for _, k := range []string{"interface", "interfaces-regex", "listen", "web-config-file", "log", "per-remote-port", "pprof"} {
		if _, ok := parsed[k]; !ok {
			t.Errorf("%s: no option %s", configFile, k)
		}
	}
	if parsed["listen"] != "127.0.0.1:9464" {
		t.Errorf("listen %v, want the documented default 127.0.0.1:9464", parsed["listen"])
	}
}
