#!/usr/bin/env bash
# Bulk TCP throughput over a veth pair while `tcplens top` refreshes every
# second (sock_diag in every namespace, plus its retrans, resets and states
# tracepoints), as a ratio to no observer measured in the same round.
#
#   sudo bench/top_throughput.sh                 # 5 s per measurement, 7 rounds
#   DURATION=10 ROUNDS=9 sudo bench/top_throughput.sh
#   TOP_ARGS="--interval 200ms" sudo bench/top_throughput.sh
#
# Same setup as sockpath_throughput.sh (lib.sh): iperf3 from A to B over
# IPv4, client and server pinned to CPUs 0 and 1, both configurations in a
# new random order every round. Nothing leaves the namespaces; they are
# deleted on exit and every process started here is ended by its PID.
set -euo pipefail

DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-7}
TOP_ARGS=${TOP_ARGS:-}
AFFINITY=${AFFINITY:-0,1}
CONFIGS="none top"
source "$(dirname "$0")/lib.sh"
bench_init top 10.199.3 timeout

TICK_MS=$((1000 / $(getconf CLK_TCK)))
cpu_ms() { awk -v t="$TICK_MS" '{print ($14 + $15) * t}' "/proc/$1/stat"; } # user + system

OBS=()
TOP_PID= TOP_CPU0=
start_observers() { # start_observers CONFIG ROUND
	OBS=()
	TOP_PID=
	[[ $1 == top ]] || return 0
	local extra pid
	read -r -a extra <<<"$TOP_ARGS"
	ip netns exec "$NSB" timeout $((DURATION + 60)) "$TCPLENS" top -o json "${extra[@]}" \
		--ready-file "$WORK/ready.top" >"$WORK/top.$2.json" 2>"$WORK/top.$2.err" &
	pid=$!
	PIDS+=("$pid")
	OBS+=("$pid")
	wait_for "$pid" test -e "$WORK/ready.top" || { cat "$WORK/top.$2.err" >&2; return 1; }
	# timeout runs tcplens as its child: its CPU from here on is what the
	# transfer competes with (start-up, BPF loading, is left out).
	TOP_PID=$(pgrep -P "$pid" | head -n 1)
	TOP_CPU0=$(cpu_ms "$TOP_PID")
}

stop_observers() {
	local pid
	if [[ -n $TOP_PID ]]; then
		echo "$(($(cpu_ms "$TOP_PID") - TOP_CPU0))" >>"$WORK/top_cpu"
	fi
	for pid in "${OBS[@]}"; do stop "$pid"; done
	rm -f "$WORK"/ready.*
}

echo "# $(uname -r), $(nproc) CPUs, ${DURATION}s x ${ROUNDS} rounds, top = tcplens top -o json $TOP_ARGS"
RESULTS=$WORK/results
for round in $(seq "$ROUNDS"); do
	for cfg in $(printf '%s\n' $CONFIGS | shuf); do
		start_observers "$cfg" "$round"
		bps=$(measure)
		stop_observers
		echo "$round $cfg $bps" | tee -a "$RESULTS" | awk '{printf "round %s %-9s %7.2f Gbit/s\n", $1, $2, $3/1e9}'
	done
	[[ ! -e $WORK/top.$round.json ]] ||
		echo "        refreshes: $(grep -c '"type":"totals"' "$WORK/top.$round.json" || true)"
done

report "$RESULTS" $CONFIGS
# What top took of the two CPUs while the transfer ran: a bound on its cost
# that does not depend on the transfer's run-to-run spread.
echo "top's CPU during a ${DURATION}s transfer, per round (ms): $(sort -n "$WORK/top_cpu" | tr '\n' ' ')"
echo "median share of $(nproc) CPUs: $(median <"$WORK/top_cpu" | awk -v d="$DURATION" -v n="$(nproc)" '{printf "%.2f%%", 100 * $1 / (d * 1000 * n)}')"
