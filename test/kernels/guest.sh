#!/bin/sh
# guest.sh BUILD-DIR: what test/kernels/run.sh runs inside each kernel, as
# root: `tcplens doctor`, then every package's prebuilt test binary in its
# package directory. BUILD-DIR/packages lists "BINARY DIR" per line.
# Output is parsed by run.sh (verdict.sh); the "=== tcplens-kernels" lines
# are its markers.
B=$1
export TCPLENS_BIN=$B/tcplens TCPLENS_REQUIRE_PRIVILEGED=1
T=$(mktemp -d)
echo "=== tcplens-kernels kernel $(uname -r) emulation ${TCPLENS_EMULATION:-none}"
# Under QEMU's TCG, guests have crashed with "Oops: int3" at tracepoint
# call sites (the jump label of trace_sock_send_length in 6.12's
# sock_write_iter; the static call in call_trace_sock_recv_length) while a
# test attached or detached a program there: a vCPU ran the int3 of the
# kernel's live text patching (text_poke_bp) after the patching had
# finished, which the kernel's sync_core IPIs rule out on hardware. A call
# site is patched only when a tracepoint's probes go 0<->1 (static key) or
# 1<->2 (static call). tphold keeps two probes on every tracepoint tcplens
# uses for the whole run, so tests only ever go N -> N+1 -> N: no kernel
# text changes under them. (XDP's dispatcher is still patched on attach;
# run.sh boots a crashed kernel once more.)
if [ "${TCPLENS_EMULATION:-}" = tcg ]; then
	"$B/tphold" tcp_retransmit_skb tcp_retransmit_synack inet_sock_set_state tcp_probe \
		tcp_destroy_sock sock_send_length sock_recv_length tcp_send_reset \
		tcp_receive_reset kfree_skb >"$T/tphold.out" 2>&1 &
	i=0
	while ! grep -q '^tphold: holding' "$T/tphold.out" 2>/dev/null && [ $i -lt 120 ]; do
		sleep 0.5
		i=$((i + 1))
	done
	echo "=== tcplens-kernels tracepoints held: $(tr '\n' ' ' <"$T/tphold.out")"
fi
echo "=== tcplens-kernels doctor"
"$TCPLENS_BIN" doctor
echo "=== tcplens-kernels doctor exit $?"

# run_tests BIN DIR [FLAGS...] runs BIN's tests in DIR, its output both on
# stdout and in $T/out; its exit status goes to $T/rc (the pipe would
# hide it).
run_tests() {
	bin=$1 dir=$2
	shift 2
	(
		cd "$dir" && "$B/$bin" -test.v -test.count=1 -test.timeout="${TCPLENS_KERNELS_TEST_TIMEOUT:-25m}" ${TCPLENS_KERNELS_TESTARGS:-} "$@" 2>&1
		echo $? >"$T/rc"
	) | tee "$T/out"
}

while read -r bin dir; do
	start=$(date +%s)
	echo "=== tcplens-kernels package $dir"
	echo 1 >"$T/rc"
	run_tests "$bin" "$dir"
	rc=$(cat "$T/rc")
	echo "=== tcplens-kernels package $dir exit $rc seconds $(($(date +%s) - start))"
	# Under TCG (tens of times slower than hardware, with timing that
	# swings from run to run), the tests that failed are run once more, on
	# their own. run.sh counts a test that passes then as flaky and prints
	# its first failure; one that fails twice fails the kernel. A package
	# that panicked or timed out, or failed without naming a test, is not
	# retried. Hardware kernels (the native suite) get no retry at all.
	if [ "$rc" != 0 ] && [ "${TCPLENS_EMULATION:-}" = tcg ] && ! grep -q '^panic: ' "$T/out"; then
		failed=$(sed -n 's/^--- FAIL: \([^ ]*\) .*/\1/p' "$T/out" | sort -u | paste -sd '|' -)
		if [ -n "$failed" ]; then
			echo "=== tcplens-kernels retry $dir tests $failed"
			echo 1 >"$T/rc"
			run_tests "$bin" "$dir" -test.run "^($failed)\$"
			echo "=== tcplens-kernels retry $dir exit $(cat "$T/rc")"
		fi
	fi
done <"$B/packages"
rm -rf "$T"
