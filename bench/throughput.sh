#!/usr/bin/env bash
# Bulk TCP throughput over a veth pair with and without an observer on the
# receiving side, as a ratio to no observer measured in the same run.
#
#   sudo bench/throughput.sh                 # 5 s per measurement, 5 rounds
#   DURATION=10 ROUNDS=7 sudo bench/throughput.sh
#   CONFIGS="none tcplens-tc tcpdump" sudo bench/throughput.sh
#
# Two network namespaces joined by one veth pair; iperf3 sends from A to B
# over IPv4; the observer watches B's end (vethB). Every round runs every
# configuration once, in a new random order, so slow drift and other load on
# the machine spread over all of them. Nothing leaves the namespaces; the
# namespaces (and with them the veth pair and any XDP program) are deleted
# on exit, and every process started here is ended by its PID.
#
# Configurations:
#   none          no observer
#   tcplens-tc    tcplens flags --hook tc   (tcx ingress)
#   tcplens-xdp   tcplens flags --hook xdp  (native XDP on veth)
#   tcplens-syn   tcplens syn --hook tc     (SYN tracking; tcx)
#   empty-xdp     an XDP program that only returns XDP_PASS (bench_empty.c),
#                 attached native with ip link: the cost of native XDP on veth
#                 itself, whatever the program does
#   tcpdump       tcpdump -i vethB -w /dev/null
set -euo pipefail

DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-5}
CONFIGS=${CONFIGS:-"none tcplens-tc tcplens-xdp tcplens-syn empty-xdp tcpdump"}
source "$(dirname "$0")/lib.sh"
bench_init throughput 10.199.0 tcpdump
EMPTY_OBJ=${EMPTY_OBJ:-$REPO/internal/bpfobj/bench_bpfel.o}
EMPTY_SEC=${EMPTY_SEC:-xdp}

# start_observer CONFIG LOG: attach CONFIG's observer; OBS_PID is its
# process, if it has one. Runs in this shell (not $(...)) so that the
# observer stays our child and stop can reap it.
start_observer() {
	local cfg=$1 log=$2 ready=$WORK/ready
	OBS_PID=
	rm -f "$ready"
	case $cfg in
	none) ;;
	tcplens-tc | tcplens-xdp | tcplens-syn)
		local cmd=flags hook=${cfg#tcplens-}
		[[ $cfg == tcplens-syn ]] && cmd=syn hook=tc
		ip netns exec "$NSB" "$TCPLENS" "$cmd" -i vethB --hook "$hook" --interval 1h \
			--ready-file "$ready" >"$log" 2>&1 &
		OBS_PID=$!
		PIDS+=("$OBS_PID")
		wait_for "$OBS_PID" test -e "$ready"
		;;
	empty-xdp)
		ip -n "$NSB" link set dev vethB xdpdrv obj "$EMPTY_OBJ" sec "$EMPTY_SEC"
		ip -n "$NSB" -d link show dev vethB >"$log"
		;;
	tcpdump)
		ip netns exec "$NSB" tcpdump -i vethB -n -w /dev/null >"$log" 2>&1 &
		OBS_PID=$!
		PIDS+=("$OBS_PID")
		wait_for "$OBS_PID" grep -qs "listening on" "$log"
		;;
	esac
}

stop_observer() { # stop_observer CONFIG
	case $1 in
	empty-xdp) ip -n "$NSB" link set dev vethB xdpdrv off ;;
	*) [[ -z $OBS_PID ]] || stop "$OBS_PID" ;;
	esac
}

echo "# $(uname -r), $(nproc) CPUs, ${DURATION}s x ${ROUNDS} rounds, configs: $CONFIGS"
RESULTS=$WORK/results # round config bits/s
for round in $(seq "$ROUNDS"); do
	for cfg in $(printf '%s\n' $CONFIGS | shuf); do
		log=$WORK/$cfg.$round.log
		start_observer "$cfg" "$log" || { cat "$log" >&2; exit 1; }
		[[ $cfg != *xdp ]] || ip -n "$NSB" link show dev vethB 2>/dev/null | head -1 | grep -qw xdp ||
			{ echo "$cfg: no native XDP program on vethB" >&2; exit 1; }
		bps=$(measure)
		stop_observer "$cfg"
		echo "$round $cfg $bps" | tee -a "$RESULTS" | awk '{printf "round %s %-12s %7.2f Gbit/s\n", $1, $2, $3/1e9}'
	done
done

report "$RESULTS" $CONFIGS
