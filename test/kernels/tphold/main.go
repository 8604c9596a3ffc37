// Command tphold keeps two do-nothing BPF programs attached to each raw
// tracepoint named on its command line until it is killed. The kernel
// harness (test/kernels/guest.sh) runs it inside QEMU/TCG guests before
// any test.
//
// Why: a tracepoint's call site is patched live (text_poke_bp) when its
// number of attached probes goes 0<->1 (static key) or 1<->2 (the static
// call switches between the single probe and the iterator). Under
// multi-threaded TCG a vCPU has run the int3 of that patching after it
// had finished, and the guest died ("Oops: int3" in
// call_trace_sock_recv_length). With two probes held from the start,
// every later attach and detach is N -> N+1 -> N, which only swaps an
// RCU-protected array: no kernel text changes during the tests.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: tphold TRACEPOINT...")
		os.Exit(2)
	}
	// Two programs: before 6.6 a raw tracepoint's probe data is the
	// program, and the same program twice on one tracepoint is EEXIST.
	var progs [2]*ebpf.Program
	for i := range progs {
		prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
			Name:         "tphold",
			Type:         ebpf.RawTracepoint,
			License:      "GPL",
			Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "tphold: load program:", err)
			os.Exit(1)
		}
		progs[i] = prog
	}
	var links []link.Link
	var held []string
	for _, tp := range os.Args[1:] {
		ok := true
		for _, prog := range progs {
			l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: tp, Program: prog})
			if err != nil {
				// A tracepoint this kernel lacks (sock_send_length before
				// 6.3) has no call site to patch either.
				fmt.Fprintf(os.Stderr, "tphold: %s: %v\n", tp, err)
				ok = false
				break
			}
			links = append(links, l)
		}
		if ok {
			held = append(held, tp)
		}
	}
	fmt.Println("tphold: holding", held)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	for _, l := range links {
		l.Close()
	}
}
