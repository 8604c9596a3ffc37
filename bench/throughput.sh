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
REPO=$(cd "$(dirname "$0")/.." && pwd)
EMPTY_OBJ=${EMPTY_OBJ:-$REPO/internal/bpfobj/bench_bpfel.o}
EMPTY_SEC=${EMPTY_SEC:-xdp}

[[ $(id -u) == 0 ]] || { echo "throughput.sh: needs root (network namespaces, BPF)" >&2; exit 2; }
for tool in ip iperf3 tcpdump jq; do
	command -v "$tool" >/dev/null || { echo "throughput.sh: $tool not found" >&2; exit 2; }
done

WORK=$(mktemp -d /tmp/tcplens-throughput.XXXXXX)
NSA=tlbenchA$$
NSB=tlbenchB$$
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
ip -n "$NSA" addr add 10.199.0.1/24 dev vethA
ip -n "$NSB" addr add 10.199.0.2/24 dev vethB
ip -n "$NSA" link set lo up
ip -n "$NSB" link set lo up
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
		kill -0 "$pid" 2>/dev/null || { echo "observer exited early" >&2; return 1; }
		sleep 0.1
	done
	echo "observer not ready after 10 s" >&2
	return 1
}

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

ip netns exec "$NSB" iperf3 -s -B 10.199.0.2 >"$WORK/iperf3-server.log" 2>&1 &
PIDS+=($!)
wait_for $! sh -c "ip netns exec $NSB ss -Hltn 'sport = :5201' | grep -q ."

measure() { # measure: one iperf3 run A -> B, prints receiver bits/s
	ip netns exec "$NSA" iperf3 -c 10.199.0.2 -t "$DURATION" -J >"$WORK/iperf3.json"
	jq -r '.end.sum_received.bits_per_second' "$WORK/iperf3.json"
}

median() { sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

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

echo
echo "# median Gbit/s; ratio = median over rounds of (config / none in the same round)"
printf '%-12s %8s %8s %s\n' config Gbit/s ratio per-round
for cfg in $CONFIGS; do
	med=$(awk -v c="$cfg" '$2==c {print $3}' "$RESULTS" | median)
	ratios=$(awk -v c="$cfg" '$2=="none" {n[$1]=$3} $2==c {v[$1]=$3} END {for (r in v) if (n[r]) printf "%.3f\n", v[r]/n[r]}' "$RESULTS" | sort -g)
	printf '%-12s %8.2f %8s %s\n' "$cfg" "$(awk -v m="$med" 'BEGIN {print m / 1e9}')" \
		"$(echo "$ratios" | median | xargs printf '%.3f')" "$(echo $ratios)"
done
