#!/usr/bin/env bash
# tcplens capture against tcpdump -w during a bounded high-rate transfer over
# a veth pair: packets lost, CPU used by the observer, and iperf3's
# throughput as a ratio to no observer in the same round.
#
#   sudo bench/capture.sh                  # 5 s per measurement, 5 rounds
#   DURATION=10 ROUNDS=7 sudo bench/capture.sh
#   GSO=1 sudo bench/capture.sh            # let TCP send 64 KB GSO packets
#   BUFFER_KIB=64 sudo bench/capture.sh    # small kernel buffers, to compare losses
#
# A sends to B with iperf3 (IPv4, CPUs pinned as in throughput.sh). By
# default A's veth has gso_max_segs 1, so every wire segment is its own
# skb and the observers see the packet rate of a real link (~1,500-byte
# packets), not one 64 KB super-packet in 45. Both observers watch B's veth,
# both directions, and write headers only to a file in $WORK: tcplens with
# its default snaplen (Ethernet+IP+TCP with options), tcpdump -s 128
# (the same headers and a few payload bytes; -B 4096 KiB, tcplens's default
# ring is 4 MiB too). Losses: tcpdump's "dropped by kernel", tcplens's
# "lost". CPU: the observer's utime+stime from /proc/PID/stat over the run.
# Nothing leaves the namespaces; they are deleted on exit and every process
# started here is ended by its PID.
set -euo pipefail

DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-5}
AFFINITY=${AFFINITY:-0,1}
GSO=${GSO:-0}
BUFFER_KIB=${BUFFER_KIB:-4096} # both observers' kernel buffer: tcpdump -B, tcplens --buffer-size
CONFIGS=${CONFIGS:-"none capture tcpdump"}
source "$(dirname "$0")/lib.sh"
bench_init capture 10.199.7 timeout tcpdump
[[ $GSO == 1 ]] || ip -n "$NSA" link set dev vethA gso_max_segs 1

OBS=
start_observer() { # start_observer CONFIG ROUND
	OBS=
	case $1 in
	capture)
		ip netns exec "$NSB" timeout $((DURATION + 60)) "$TCPLENS" capture -i vethB --no-process --buffer-size $((BUFFER_KIB * 1024)) \
			-w "$WORK/c.pcapng" --ready-file "$WORK/ready" 2>"$WORK/capture.$2.err" &
		OBS=$!
		wait_for "$OBS" test -e "$WORK/ready" || { cat "$WORK/capture.$2.err" >&2; return 1; }
		;;
	tcpdump)
		ip netns exec "$NSB" timeout $((DURATION + 60)) tcpdump -i vethB -s 128 -B "$BUFFER_KIB" -w "$WORK/t.pcap" tcp \
			2>"$WORK/tcpdump.$2.err" &
		OBS=$!
		wait_for "$OBS" grep -q "listening on" "$WORK/tcpdump.$2.err"
		;;
	esac
	PIDS+=("$OBS")
	[[ -z $OBS ]] || CPU0=$(cpu_ticks "$OBS")
}

cpu_ticks() { # utime+stime of PID's process (and its child: timeout runs the observer)
	local child
	child=$(pgrep -P "$1" | head -1)
	awk '{print $14 + $15}' "/proc/${child:-$1}/stat"
}

stop_observer() { # stop_observer CONFIG ROUND: sets CPU, CAPTURED, LOST
	CPU=0 CAPTURED=0 LOST=0
	[[ -n $OBS ]] || return 0
	local cpu child
	cpu=$(( $(cpu_ticks "$OBS") - CPU0 ))
	child=$(pgrep -P "$OBS" | head -1)
	kill -INT "${child:-$OBS}" 2>/dev/null || true
	local rc=0
	wait "$OBS" 2>/dev/null || rc=$?
	[[ $rc == 0 ]] || echo "$1 exited with $rc" >&2
	rm -f "$WORK/ready" "$WORK"/*.pcap*
	local err=$WORK/$1.$2.err captured lost
	if [[ $1 == capture ]]; then
		read -r captured lost < <(sed -n 's/^\([0-9]*\) packets captured, [0-9]* matched by filter, \([0-9]*\) lost$/\1 \2/p' "$err") ||
			{ echo "tcplens capture: no summary:" >&2; cat "$err" >&2; }
	else
		captured=$(sed -n 's/^\([0-9]*\) packets captured$/\1/p' "$err")
		lost=$(sed -n 's/^\([0-9]*\) packets dropped by kernel$/\1/p' "$err")
	fi
	CPU=$(awk -v t="$cpu" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", t / hz}')
	CAPTURED=${captured:-?} LOST=${lost:-?}
}

echo "# $(uname -r), $(nproc) CPUs, ${DURATION}s x ${ROUNDS} rounds, GSO=$GSO, buffers ${BUFFER_KIB} KiB"
RESULTS=$WORK/results # round config bits/s
for round in $(seq "$ROUNDS"); do
	for cfg in $(printf '%s\n' $CONFIGS | shuf); do
		start_observer "$cfg" "$round"
		bps=$(measure)
		stop_observer "$cfg" "$round"
		cpu=$CPU captured=$CAPTURED lost=$LOST
		echo "$round $cfg $bps" >>"$RESULTS"
		echo "$round $cfg $cpu $captured $lost" >>"$WORK/obs"
		awk -v r="$round" -v c="$cfg" -v b="$bps" -v cpu="$cpu" -v cap="$captured" -v l="$lost" \
			'BEGIN {printf "round %s %-8s %6.2f Gbit/s  cpu %5ss  captured %9s  lost %9s\n", r, c, b/1e9, cpu, cap, l}'
	done
done

report "$RESULTS" $CONFIGS
echo
echo "# per observer: median cpu seconds, median captured, median lost, median lost fraction"
for cfg in capture tcpdump; do
	printf '%-8s cpu %6s  captured %9s  lost %9s  lost/(captured+lost) %s\n' "$cfg" \
		"$(awk -v c="$cfg" '$2==c {print $3}' "$WORK/obs" | median)" \
		"$(awk -v c="$cfg" '$2==c {print $4}' "$WORK/obs" | median)" \
		"$(awk -v c="$cfg" '$2==c {print $5}' "$WORK/obs" | median)" \
		"$(awk -v c="$cfg" '$2==c && $4+$5>0 {printf "%.4f\n", $5/($4+$5)}' "$WORK/obs" | median)"
done
