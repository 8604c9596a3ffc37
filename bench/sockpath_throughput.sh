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
REPO=$(cd "$(dirname "$0")/.." && pwd)

[[ $(id -u) == 0 ]] || { echo "sockpath_throughput.sh: needs root (network namespaces, BPF)" >&2; exit 2; }
for tool in ip iperf3 jq timeout; do
	command -v "$tool" >/dev/null || { echo "sockpath_throughput.sh: $tool not found" >&2; exit 2; }
done

WORK=$(mktemp -d /tmp/tcplens-sockpath.XXXXXX)
NSA=tlspA$$
NSB=tlspB$$
PIDS=()

cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	ip netns del "$NSA" 2>/dev/null || true
	ip netns del "$NSB" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

TCPLENS=${TCPLENS:-}
if [[ -z $TCPLENS ]]; then
	TCPLENS=$WORK/tcplens
	(cd "$REPO" && go build -o "$TCPLENS" ./cmd/tcplens)
fi

ip netns add "$NSA"
ip netns add "$NSB"
ip link add vethA netns "$NSA" type veth peer name vethB netns "$NSB"
ip -n "$NSA" addr add 10.199.1.1/24 dev vethA
ip -n "$NSB" addr add 10.199.1.2/24 dev vethB
for ns in "$NSA" "$NSB"; do ip -n "$ns" link set lo up; done
ip -n "$NSA" link set vethA up
ip -n "$NSB" link set vethB up

stop() { # stop PID: end one process we started, and reap it
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

wait_for() { # wait_for PID TEST...: until TEST holds, or fail if PID died
	local pid=$1
	shift
	for _ in $(seq 100); do
		"$@" && return 0
		kill -0 "$pid" 2>/dev/null || { echo "process $pid exited early" >&2; return 1; }
		sleep 0.1
	done
	echo "process $pid not ready after 10 s" >&2
	return 1
}

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

ip netns exec "$NSB" iperf3 -s -B 10.199.1.2 >"$WORK/iperf3-server.log" 2>&1 &
PIDS+=($!)
wait_for $! sh -c "ip netns exec $NSB ss -Hltn 'sport = :5201' | grep -q ."

measure() { # measure: one iperf3 run A -> B, prints receiver bits/s
	ip netns exec "$NSA" timeout $((DURATION + 30)) iperf3 -c 10.199.1.2 -t "$DURATION" ${AFFINITY:+-A "$AFFINITY"} -J >"$WORK/iperf3.json"
	jq -r '.end.sum_received.bits_per_second' "$WORK/iperf3.json"
}

median() { sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

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

echo
echo "# median Gbit/s; ratio = median over rounds of (config / none in the same round)"
printf '%-9s %8s %8s %s\n' config Gbit/s ratio per-round
for cfg in $CONFIGS; do
	med=$(awk -v c="$cfg" '$2==c {print $3}' "$RESULTS" | median)
	ratios=$(awk -v c="$cfg" '$2=="none" {n[$1]=$3} $2==c {v[$1]=$3} END {for (r in v) if (n[r]) printf "%.3f\n", v[r]/n[r]}' "$RESULTS" | sort -g)
	printf '%-9s %8.2f %8s %s\n' "$cfg" "$(awk -v m="$med" 'BEGIN {print m / 1e9}')" \
		"$(echo "$ratios" | median | xargs printf '%.3f')" "$(echo $ratios)"
done
