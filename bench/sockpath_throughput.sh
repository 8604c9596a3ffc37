#!/usr/bin/env bash
# Bulk TCP throughput over a veth pair with every socket-path program
# attached (tcplens states, rtt, retrans, resets and drops running at once),
# as a ratio to no observer measured in the same round.
#
#   sudo bench/sockpath_throughput.sh              # 5 s per measurement, 7 rounds
#   DURATION=10 ROUNDS=9 sudo bench/sockpath_throughput.sh
#   COMMANDS="rtt states" sudo bench/sockpath_throughput.sh
#   RTT_ARGS="--cwnd-change 25" sudo bench/sockpath_throughput.sh
#
# Two network namespaces joined by one veth pair; iperf3 sends from A to B
# over IPv4. The tracepoints see every namespace, so the tcplens processes
# run in B's namespace only for tidiness; they write JSON lines to files.
# Every round runs both configurations (none, sockpath) in a new random
# order. iperf3's client and server are pinned to CPUs 0 and 1 (AFFINITY):
# floating, they made single runs vary from 8 to 18 Gbit/s on 2 vCPUs.
# Nothing leaves the namespaces; the namespaces are deleted on exit
# and every process started here is ended by its PID.
set -euo pipefail

DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-7}
COMMANDS=${COMMANDS:-"states rtt retrans resets drops"}
RTT_ARGS=${RTT_ARGS:-} # extra flags for tcplens rtt, e.g. "--cwnd-change 25"
AFFINITY=${AFFINITY:-0,1} # iperf3 -A: client CPU, server CPU ("" to let them float)
CONFIGS="none sockpath"
source "$(dirname "$0")/lib.sh"
bench_init sockpath 10.199.1 timeout

OBS=()
start_observers() { # start_observers CONFIG ROUND
	OBS=()
	[[ $1 == sockpath ]] || return 0
	local cmd pid extra
	for cmd in $COMMANDS; do
		extra=()
		[[ $cmd == rtt ]] && read -r -a extra <<<"$RTT_ARGS"
		ip netns exec "$NSB" timeout $((DURATION + 60)) "$TCPLENS" "$cmd" -o json "${extra[@]}" \
			--ready-file "$WORK/ready.$cmd" >"$WORK/$cmd.$2.json" 2>"$WORK/$cmd.$2.err" &
		pid=$!
		PIDS+=("$pid")
		OBS+=("$pid")
		wait_for "$pid" test -e "$WORK/ready.$cmd" || { cat "$WORK/$cmd.$2.err" >&2; return 1; }
	done
}

stop_observers() {
	local pid
	for pid in "${OBS[@]}"; do stop "$pid"; done
	rm -f "$WORK"/ready.*
}

echo "# $(uname -r), $(nproc) CPUs, ${DURATION}s x ${ROUNDS} rounds, sockpath = tcplens $COMMANDS"
RESULTS=$WORK/results # round config bits/s
for round in $(seq "$ROUNDS"); do
	for cfg in $(printf '%s\n' $CONFIGS | shuf); do
		start_observers "$cfg" "$round"
		bps=$(measure)
		stop_observers
		echo "$round $cfg $bps" | tee -a "$RESULTS" | awk '{printf "round %s %-9s %7.2f Gbit/s\n", $1, $2, $3/1e9}'
	done
	[[ -z $(ls "$WORK"/*."$round".json 2>/dev/null) ]] ||
		echo "        records: $(for f in "$WORK"/*."$round".json; do printf '%s=%s ' "$(basename "$f" ."$round".json)" "$(grep -vc '"type":"summary"' "$f" || true)"; done)"
done

report "$RESULTS" $CONFIGS
