#!/usr/bin/env bash
# The cost of `tcplens agent`: its CPU and memory idle, with 10,000
# connections open and under a bounded SYN flood from 50,000 spoofed
# sources; how long a scrape of /metrics takes in each case; and bulk
# TCP throughput with the agent running, as a ratio to none measured in the
# same round (target >= 0.95).
#
#   sudo bench/agent.sh                       # defaults below
#   CONNS=20000 ROUNDS=9 sudo bench/agent.sh
#   AGENT_ARGS="--per-remote-port" sudo bench/agent.sh
#   TCPLENS=./tcplens sudo bench/agent.sh     # a given binary instead of a build
#
# Same setup as the other throughput scripts (lib.sh): namespaces A and B
# joined by one veth pair, iperf3 from A to B pinned to CPUs 0 and 1. The
# agent runs in B (`ip netns exec`), watches vethB and serves on B's
# loopback; it sees every namespace, as on a node. The connections and the
# flood go from A to B (bench/loadgen). Nothing leaves the namespaces;
# they are deleted on exit and every process started here is ended by its
# PID.
#
# CPU is the agent's utime+stime over WINDOW seconds (or over the flood and
# the 2 s after it),
# in % of one CPU; RSS is VmRSS at the end of the phase, HWM the peak
# (VmHWM) so far; series is the number of samples in /metrics; scrape is
# the median and the slowest of SCRAPES `curl` timings of /metrics.
set -euo pipefail

DURATION=${DURATION:-5}          # seconds per iperf3 run
ROUNDS=${ROUNDS:-5}              # throughput rounds (none and agent, shuffled)
AFFINITY=${AFFINITY:-0,1}
CONNS=${CONNS:-10000}            # connections held open from A to B
WINDOW=${WINDOW:-10}             # seconds of CPU measured per steady phase
SCRAPES=${SCRAPES:-20}           # scrapes timed per phase
FLOOD_SOURCES=${FLOOD_SOURCES:-50000}
FLOOD_SYNS=${FLOOD_SYNS:-5000000}
FLOOD_SECONDS=${FLOOD_SECONDS:-20} # the flood stops after this even if not all sent
AGENT_ARGS=${AGENT_ARGS:-}
LISTEN=127.0.0.1:9464
CONFIGS="none agent"
source "$(dirname "$0")/lib.sh"
bench_init agent 10.199.9 curl ss

if ! help=$("$TCPLENS" agent --help 2>&1); then
	echo "bench/agent.sh: $TCPLENS has no working 'agent' command (tcplens agent --help: $(echo "$help" | head -1)); build one that has it, or set TCPLENS=" >&2
	exit 2
fi
(cd "$REPO" && go build -o "$WORK/loadgen" ./bench/loadgen)
CLK_TCK=$(getconf CLK_TCK)
# The flood's spoofed sources have no route back (their answers go nowhere);
# the reverse path filter must not drop them before TCP sees them.
ip netns exec "$NSB" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.vethB.rp_filter=0

AGENT=
start_agent() {
	local extra
	read -r -a extra <<<"$AGENT_ARGS"
	# ip execs the agent, so $! is the agent's own PID.
	ip netns exec "$NSB" "$TCPLENS" agent -i vethB --listen "$LISTEN" "${extra[@]}" >>"$WORK/agent.log" 2>&1 &
	AGENT=$!
	PIDS+=("$AGENT")
	wait_for "$AGENT" ip netns exec "$NSB" curl -sf -o /dev/null "http://$LISTEN/readyz" || {
		tail -20 "$WORK/agent.log" >&2
		return 1
	}
}

stop_agent() {
	stop "$AGENT"
	AGENT=
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
status_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

# scrape_stats: "median_ms max_ms series" of $SCRAPES scrapes.
scrape_stats() {
	local i times=() series
	for i in $(seq "$SCRAPES"); do
		times+=("$(ip netns exec "$NSB" curl -sf -o "$WORK/metrics" -w '%{time_total}' "http://$LISTEN/metrics")")
	done
	series=$(grep -vc '^#' "$WORK/metrics" || true)
	printf '%s\n' "${times[@]}" | awk '{print $1 * 1000}' | sort -g |
		awk -v s="$series" '{v[NR]=$1} END {printf "%.1f %.1f %d", (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2, v[NR], s}'
}

# phase NAME: the agent's CPU over WINDOW seconds, then memory and scrapes.
phase() {
	local t0 t1 cpu
	t0=$(cpu_ticks "$AGENT")
	sleep "$WINDOW"
	t1=$(cpu_ticks "$AGENT")
	cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$CLK_TCK" -v w="$WINDOW" 'BEGIN {printf "%.1f", (b - a) / hz / w * 100}')
	report_phase "$1" "$cpu" "$WINDOW"
}

report_phase() { # report_phase NAME CPU% SECONDS
	local s
	s=$(scrape_stats)
	printf '%-22s %6s%% %6.1f MiB %6.1f MiB %8s ms %8s ms %7s  (%ss)\n' "$1" "$2" \
		"$(awk -v k="$(status_kib "$AGENT" VmRSS)" 'BEGIN {print k / 1024}')" \
		"$(awk -v k="$(status_kib "$AGENT" VmHWM)" 'BEGIN {print k / 1024}')" \
		$s "$3"
}

echo "# $(uname -r), $(nproc) CPUs; agent = tcplens agent -i vethB --listen $LISTEN $AGENT_ARGS"
echo
printf '%-22s %7s %10s %10s %11s %11s %7s\n' phase CPU RSS HWM scrape-med scrape-max series
start_agent
phase idle

# 10,000 connections from A to B, held open.
ip netns exec "$NSB" "$WORK/loadgen" serve -addr "$ADDR_B:7000" >"$WORK/serve.log" 2>&1 &
SERVE=$!
PIDS+=("$SERVE")
wait_for "$SERVE" grep -q listening "$WORK/serve.log"
ip netns exec "$NSA" "$WORK/loadgen" conns -to "$ADDR_B:7000" -n "$CONNS" >"$WORK/conns.log" 2>&1 &
CONNS_PID=$!
PIDS+=("$CONNS_PID")
for _ in $(seq 600); do # up to 60 s
	grep -q ready "$WORK/conns.log" && break
	kill -0 "$CONNS_PID" 2>/dev/null || { cat "$WORK/conns.log" >&2; exit 1; }
	sleep 0.1
done
grep -q ready "$WORK/conns.log" || { echo "bench/agent.sh: $CONNS connections not open after 60 s" >&2; exit 1; }
established=$(ip netns exec "$NSB" ss -Htn state established "sport = :7000" | wc -l)
sleep 3 # a few of the agent's refreshes with them
phase "$established conns"
stop "$CONNS_PID"
stop "$SERVE"

# A bounded SYN flood from A into B, onto a port nobody listens on (B
# answers RST, routed nowhere).
MAC_B=$(ip -n "$NSB" -br link show vethB | awk '{print $3}')
t0=$(cpu_ticks "$AGENT")
start=$(date +%s.%N)
ip netns exec "$NSA" timeout $((FLOOD_SECONDS + 30)) "$WORK/loadgen" synflood -link vethA -dst-mac "$MAC_B" \
	-dst "$ADDR_B" -dport 9 -sources "$FLOOD_SOURCES" -count "$FLOOD_SYNS" -max-time "${FLOOD_SECONDS}s" >"$WORK/flood.log" 2>&1 &
FLOOD=$!
PIDS+=("$FLOOD")
wait "$FLOOD" || { cat "$WORK/flood.log" >&2; exit 1; }
sleep 2 # counted too: the agent's next refresh reads what the flood left
t1=$(cpu_ticks "$AGENT")
secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN {printf "%.1f", e - s}')
cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$CLK_TCK" -v w="$secs" 'BEGIN {printf "%.1f", (b - a) / hz / w * 100}')
report_phase "SYN flood" "$cpu" "$secs"
echo "  flood: $(cat "$WORK/flood.log")"
stop_agent

echo
OBS=()
RESULTS=$WORK/results
for round in $(seq "$ROUNDS"); do
	for cfg in $(printf '%s\n' $CONFIGS | shuf); do
		[[ $cfg == agent ]] && start_agent
		bps=$(measure)
		[[ $cfg == agent ]] && stop_agent
		echo "$round $cfg $bps" | tee -a "$RESULTS" | awk '{printf "round %s %-9s %7.2f Gbit/s\n", $1, $2, $3/1e9}'
	done
done

report "$RESULTS" $CONFIGS
