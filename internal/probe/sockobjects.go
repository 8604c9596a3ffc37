package probe

import (
	"fmt"
	"slices"

	"github.com/cilium/ebpf"

	"github.com/tcplens/tcplens/internal/bpfobj"
)

// SockObject is the one description of a socket-path command's kernel
// side: its embedded object and the tracepoint each of its programs
// attaches to. The loaders, the tracepoints doctor tries (Tracepoints),
// what each command needs (CommandNeeds, CommandExtras) and the
// capabilities the privilege check asks for (CommandCaps) are all derived
// from sockObjects, so a new socket-path command is one entry there.
type SockObject struct {
	Command  string
	spec     func() (*ebpf.CollectionSpec, error)
	programs []tracepointProgram // attached in this order
	// extras are features the command uses where the kernel has them,
	// besides optional tracepoints (those come from optionalTracepoints).
	extras []Extra
}

var (
	RetransObject = SockObject{Command: "retrans", spec: bpfobj.LoadRetrans, programs: []tracepointProgram{
		{prog: bpfobj.RetransProgRetransmitSkb, tp: TPRetransmitSKB},
		{prog: bpfobj.RetransProgRetransmitSynack, tp: TPRetransmitSynack},
		{prog: bpfobj.RetransProgSocketState, tp: TPSetState}, // each socket's total_retrans baseline at birth
	}}
	RTTObject = SockObject{Command: "rtt", spec: bpfobj.LoadRtt, programs: []tracepointProgram{
		{prog: bpfobj.RttProgTcpProbe, tp: TPTCPProbe},
		{prog: bpfobj.RttProgTcpDestroySock, tp: TPDestroySock},
	}}
	StatesObject = SockObject{Command: "states", spec: bpfobj.LoadStates, programs: []tracepointProgram{
		{prog: bpfobj.StatesProgSetState, tp: TPSetState},
		// After set_state: it handles what the kernel skipped set_state for.
		{prog: bpfobj.StatesProgSetStateBackup, tp: TPSetState, backup: true},
		{prog: bpfobj.StatesProgDestroySock, tp: TPDestroySock},
		{prog: bpfobj.StatesProgSendLength, tp: TPSockSendLength}, // optional: 6.3+
		{prog: bpfobj.StatesProgRecvLength, tp: TPSockRecvLength},
	}}
	ResetsObject = SockObject{Command: "resets", spec: bpfobj.LoadResets, programs: []tracepointProgram{
		{prog: bpfobj.ResetsProgSendReset, tp: TPSendReset},
		{prog: bpfobj.ResetsProgReceiveReset, tp: TPReceiveReset},
	}, extras: []Extra{{FeatResetReasons, "reset reasons"}}}
	DropsObject = SockObject{Command: "drops", spec: bpfobj.LoadDrops, programs: []tracepointProgram{
		{prog: bpfobj.DropsProgKfreeSkb, tp: TPKfreeSKB},
	}}

	sockObjects = []*SockObject{&RetransObject, &RTTObject, &StatesObject, &ResetsObject, &DropsObject}
)

// Spec reads the embedded object.
func (o *SockObject) Spec() (*ebpf.CollectionSpec, error) {
	spec, err := o.spec()
	if err != nil {
		return nil, fmt.Errorf("read embedded %s object: %w", o.Command, err)
	}
	return spec, nil
}

// load reads the object, lets configure change it (when set), loads it and
// attaches every program, or attaches nothing.
func (o *SockObject) load(opts SockTracerOptions, configure func(*ebpf.CollectionSpec) error) (*SockTracer, error) {
	spec, err := o.Spec()
	if err != nil {
		return nil, err
	}
	return o.loadSpec(spec, opts, configure)
}

func (o *SockObject) loadSpec(spec *ebpf.CollectionSpec, opts SockTracerOptions, configure func(*ebpf.CollectionSpec) error) (*SockTracer, error) {
	return loadSockTracer(o.Command, spec, opts, configure, o.programs)
}

// Tracepoints are the tracepoints the object attaches to, optional ones
// included, each once.
func (o *SockObject) Tracepoints() []Tracepoint {
	var tps []Tracepoint
	for _, p := range o.programs {
		if !slices.Contains(tps, p.tp) {
			tps = append(tps, p.tp)
		}
	}
	return tps
}

// needs is what the command cannot run without: BTF for its CO-RE reads,
// the ring buffer, and every tracepoint that is not optional.
func (o *SockObject) needs() []Feature {
	f := []Feature{FeatBPF, FeatBTF, FeatRingbuf}
	for _, tp := range o.Tracepoints() {
		if _, optional := optionalTracepoints[tp]; !optional {
			f = append(f, tp.Feature())
		}
	}
	return f
}

// extrasOf is what the command runs without where the kernel lacks it.
func (o *SockObject) extrasOf() []Extra {
	var out []Extra
	for _, tp := range o.Tracepoints() {
		if lacks, optional := optionalTracepoints[tp]; optional {
			out = append(out, Extra{tp.Feature(), lacks})
		}
	}
	return append(out, o.extras...)
}

// Derived from sockObjects, together with the packet path's own entries.
var (
	// Tracepoints lists every tracepoint tcplens uses, each once.
	Tracepoints []Tracepoint
	// CommandNeeds says which features each command needs.
	CommandNeeds = map[string][]Feature{
		"flags": {FeatBPF, FeatPacketHook, FeatDefaultRoute},
		"syn":   {FeatBPF, FeatPacketHook, FeatDefaultRoute},
		// capture: the ring buffer; XDP needs bpf_xdp_load_bytes (5.18).
		"capture": {FeatBPF, FeatPacketHook, FeatRingbuf, FeatDefaultRoute},
	}
	// CommandExtras are features a command uses where the kernel has
	// them and runs without otherwise, each with what is missing then.
	CommandExtras = map[string][]Extra{}
	// CommandCaps lists, per command, the capabilities it needs without
	// root.
	CommandCaps = map[string][]Capability{
		"flags":   PacketPathCaps,
		"syn":     PacketPathCaps,
		"capture": PacketPathCaps,
	}
)

func init() {
	seen := map[Tracepoint]bool{}
	for _, o := range sockObjects {
		CommandNeeds[o.Command] = o.needs()
		if ex := o.extrasOf(); len(ex) > 0 {
			CommandExtras[o.Command] = ex
		}
		CommandCaps[o.Command] = SocketPathCaps
		for _, tp := range o.Tracepoints() {
			if !seen[tp] {
				seen[tp] = true
				Tracepoints = append(Tracepoints, tp)
			}
		}
	}
}

// SockCommands names the socket-path commands, in a fixed order.
func SockCommands() []string {
	out := make([]string, len(sockObjects))
	for i, o := range sockObjects {
		out[i] = o.Command
	}
	return out
}

// Load loads the object without load-time constants of its own and
// attaches every program: the CLI's loader for a command whose
// descriptor names no other.
func (o *SockObject) Load(opts SockTracerOptions) (*SockTracer, error) { return o.load(opts, nil) }
