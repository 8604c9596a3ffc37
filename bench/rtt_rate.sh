#!/usr/bin/env bash
# Records per second that `tcplens rtt` writes for one busy connection:
# iperf3 A -> B over a veth pair (one stream, cubic then bbr), with every
# cwnd change recorded (--cwnd-change 0, the old default) and with the
# bounded default (one record per --sample, loss event, ssthresh change
# or 25% cwnd move). Prints records/s and the records by reason.
#
#   sudo bench/rtt_rate.sh
#   DURATION=10 CCS="cubic" sudo bench/rtt_rate.sh
#
# Nothing leaves the namespaces; they are deleted on exit and every
# process started here is ended by its PID.
set -euo pipefail

DURATION=${DURATION:-5}
CCS=${CCS:-"cubic bbr"}
source "$(dirname "$0")/lib.sh"
bench_init rttrate 10.199.3 timeout

echo "# $(uname -r), $(nproc) CPUs, iperf3 -P 1 for ${DURATION}s per run"
printf '%-6s %-18s %10s %9s  %s\n' CC RTT_ARGS records records/s "by reason"
for cc in $CCS; do
	for args in "--cwnd-change 0" ""; do

		rm -f "$WORK/ready"; out=${KEEP:+/tmp/rtt_rate.$cc.${args// /}.json}; out=${out:-$WORK/rtt.json}
		# shellcheck disable=SC2086 # $args is a flag list
		ip netns exec "$NSA" timeout $((DURATION + 60)) "$TCPLENS" rtt -o json --port 5201 $args \
			--ready-file "$WORK/ready" >"$out" 2>"$WORK/rtt.err" &
		pid=$!
		PIDS+=("$pid")
		wait_for "$pid" test -e "$WORK/ready" || { cat "$WORK/rtt.err" >&2; exit 1; }
		ip netns exec "$NSA" timeout $((DURATION + 30)) iperf3 -c "$ADDR_B" -t "$DURATION" -C "$cc" -J \
			>"$WORK/iperf3.json"
		stop "$pid"
		n=$(jq -r 'select(.type == "rtt") | .type' "$out" | wc -l)
		reasons=$(jq -r 'select(.type == "rtt") | .reason' "$out" | sort | uniq -c | sort -rn |
			awk '{printf "%s%s=%s", sep, $2, $1; sep=" "}')
		printf '%-6s %-18s %10d %9.0f  %s\n' "$cc" "${args:-(default)}" "$n" \
			"$(echo "$n / $DURATION" | bc -l)" "$reasons"
	done
done
