# Shared by the throughput scripts: two network namespaces joined by one
# veth pair (A -> B), an iperf3 server in B, process bookkeeping, and the
# median/ratio report. Source it, then call bench_init. Everything stays
# inside the namespaces; on exit they are deleted and every process started
# here is ended by its PID.

# bench_init NAME SUBNET TOOL...: check root and tools, make $WORK, $NSA and
# $NSB with $ADDR_A/$ADDR_B (SUBNET.1 and .2 /24), build $TCPLENS.
bench_init() {
	local name=$1 subnet=$2
	shift 2
	[[ $(id -u) == 0 ]] || { echo "$name: needs root (network namespaces, BPF)" >&2; exit 2; }
	local tool
	for tool in ip iperf3 jq "$@"; do
		command -v "$tool" >/dev/null || { echo "$name: $tool not found" >&2; exit 2; }
	done
	REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
	WORK=$(mktemp -d "/tmp/tcplens-$name.XXXXXX")
	NSA=tl${name:0:6}A$$
	NSB=tl${name:0:6}B$$
	ADDR_A=$subnet.1
	ADDR_B=$subnet.2
	PIDS=()
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM

	TCPLENS=${TCPLENS:-}
	if [[ -z $TCPLENS ]]; then
		TCPLENS=$WORK/tcplens
		(cd "$REPO" && go build -o "$TCPLENS" ./cmd/tcplens)
	fi

	ip netns add "$NSA"
	ip netns add "$NSB"
	ip link add vethA netns "$NSA" type veth peer name vethB netns "$NSB"
	ip -n "$NSA" addr add "$ADDR_A/24" dev vethA
	ip -n "$NSB" addr add "$ADDR_B/24" dev vethB
	local ns
	for ns in "$NSA" "$NSB"; do ip -n "$ns" link set lo up; done
	ip -n "$NSA" link set vethA up
	ip -n "$NSB" link set vethB up

	ip netns exec "$NSB" iperf3 -s -B "$ADDR_B" >"$WORK/iperf3-server.log" 2>&1 &
	PIDS+=($!)
	wait_for $! sh -c "ip netns exec $NSB ss -Hltn 'sport = :5201' | grep -q ."
}

bench_cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do stop "$pid"; done
	ip netns del "$NSA" 2>/dev/null || true
	ip netns del "$NSB" 2>/dev/null || true
	rm -rf "$WORK"
}

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

# measure: one iperf3 run A -> B for $DURATION s (client and server CPUs
# pinned when $AFFINITY is set), prints the receiver's bits/s.
measure() {
	ip netns exec "$NSA" timeout $((DURATION + 30)) iperf3 -c "$ADDR_B" -t "$DURATION" \
		${AFFINITY:+-A "$AFFINITY"} -J >"$WORK/iperf3.json"
	jq -r '.end.sum_received.bits_per_second' "$WORK/iperf3.json"
}

median() { sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

# report RESULTS CONFIG...: median Gbit/s per config and the median over
# rounds of its ratio to "none" in the same round. RESULTS has lines
# "round config bits/s".
report() {
	local results=$1 cfg med ratios
	shift
	echo
	echo "# median Gbit/s; ratio = median over rounds of (config / none in the same round)"
	printf '%-12s %8s %8s %s\n' config Gbit/s ratio per-round
	for cfg in "$@"; do
		med=$(awk -v c="$cfg" '$2==c {print $3}' "$results" | median)
		ratios=$(awk -v c="$cfg" '$2=="none" {n[$1]=$3} $2==c {v[$1]=$3} END {for (r in v) if (n[r]) printf "%.3f\n", v[r]/n[r]}' "$results" | sort -g)
		printf '%-12s %8.2f %8s %s\n' "$cfg" "$(awk -v m="$med" 'BEGIN {print m / 1e9}')" \
			"$(echo "$ratios" | median | xargs printf '%.3f')" "$(echo $ratios)"
	done
}
