#!/bin/sh
# guest.sh BUILD-DIR: what test/kernels/run.sh runs inside each kernel, as
# root: `tcplens doctor`, then every package's prebuilt test binary in its
# package directory. BUILD-DIR/packages lists "BINARY DIR" per line.
# Output is parsed by run.sh; the "=== tcplens-kernels" lines are its markers.
B=$1
export TCPLENS_BIN=$B/tcplens TCPLENS_REQUIRE_PRIVILEGED=1
echo "=== tcplens-kernels kernel $(uname -r) emulation ${TCPLENS_EMULATION:-none}"
# Under QEMU's TCG, a guest has crashed with "Oops: int3" at the jump label
# of trace_sock_send_length in sock_write_iter (6.12, once in many runs),
# while another test attached a program to that tracepoint: a CPU ran the
# int3 of the kernel's live text patching (text_poke_bp) of the
# tracepoint's static key after the patching had finished, which the
# kernel's sync_core IPIs rule out on hardware. Holding each tracepoint
# tcplens uses enabled for the whole run, as a trace event that records
# nothing (tracing_on is 0), keeps its key on: attaching and detaching a
# program then patches no text.
T=/sys/kernel/tracing
if [ "${TCPLENS_EMULATION:-}" = tcg ] && [ -w $T/tracing_on ]; then
	echo 0 >$T/tracing_on
	for ev in tcp/tcp_retransmit_skb tcp/tcp_retransmit_synack sock/inet_sock_set_state tcp/tcp_probe \
		tcp/tcp_destroy_sock sock/sock_send_length sock/sock_recv_length tcp/tcp_send_reset \
		tcp/tcp_receive_reset skb/kfree_skb; do
		[ -e $T/events/$ev/enable ] && echo 1 >$T/events/$ev/enable
	done
	echo "=== tcplens-kernels tracepoints held enabled: $(cat $T/set_event | tr '\n' ' ')"
fi
echo "=== tcplens-kernels doctor"
"$TCPLENS_BIN" doctor
echo "=== tcplens-kernels doctor exit $?"
while read -r bin dir; do
	start=$(date +%s)
	echo "=== tcplens-kernels package $dir"
	(cd "$dir" && "$B/$bin" -test.v -test.count=1 -test.timeout="${TCPLENS_KERNELS_TEST_TIMEOUT:-25m}" ${TCPLENS_KERNELS_TESTARGS:-} 2>&1)
	echo "=== tcplens-kernels package $dir exit $? seconds $(($(date +%s) - start))"
done <"$B/packages"
