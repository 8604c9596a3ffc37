#!/bin/bash
# test/kernels/run.sh [NAME...]
#
# Runs `tcplens doctor` and the whole test suite under each kernel of
# test/kernels/matrix (or the NAMEs given), booted under qemu, as root with
# TCPLENS_REQUIRE_PRIVILEGED=1. The tcplens binary and one test binary per
# package are built here first (`go test -c`), so the guest compiles nothing.
# Prints per kernel a verdict line and the pass/fail counts; exits 1 when a
# kernel whose matrix policy is "gate" failed, else 0.
#
# Environment: TCPLENS_KERNELS_MATRIX (default test/kernels/matrix),
# TCPLENS_KERNELS_DIR (kernel packages, logs; default
# /tmp/tcplens-kernels), TCPLENS_KERNELS_PKGS (package dirs to test, default
# every package with tests), TCPLENS_KERNELS_TESTARGS (extra test binary
# flags, e.g. "-test.run TestStates"), and boot.sh's knobs.
# Needs: go, qemu-system-x86 busybox-static kmod xz-utils cpio (apt).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$ROOT"
export TCPLENS_KERNELS_DIR=${TCPLENS_KERNELS_DIR:-/tmp/tcplens-kernels}
DIR=$TCPLENS_KERNELS_DIR
mkdir -p "$DIR/logs"

# ---- build on the host ---------------------------------------------------------
BUILD=$(mktemp -d "$DIR/build.XXXXXX")
trap 'rm -rf "$BUILD"' EXIT
echo "kernels: building tcplens and the test binaries"
CGO_ENABLED=0 go build -o "$BUILD/tcplens" ./cmd/tcplens
CGO_ENABLED=0 go build -o "$BUILD/tphold" ./test/kernels/tphold
: >"$BUILD/packages"
while read -r pkg dir; do
	rel=${dir#"$ROOT"/}
	if [ -n "${TCPLENS_KERNELS_PKGS:-}" ] && ! echo " $TCPLENS_KERNELS_PKGS " | grep -q " $rel "; then continue; fi
	bin=$(echo "$rel" | tr / _).test
	CGO_ENABLED=0 go test -c -o "$BUILD/$bin" "$pkg"
	echo "$bin $dir" >>"$BUILD/packages"
done < <(go list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}} {{.Dir}}{{end}}' ./...)

# ---- resolve the matrix ------------------------------------------------------------
# A metapackage (linux-image-amd64) stands for the kernel it depends on today.
kernel_version() {
	local dep
	dep=$(apt-cache depends "$1" 2>/dev/null | sed -n 's/^ *Depends: linux-image-//p' | head -1)
	if [ -n "$dep" ]; then
		echo "$dep"
	elif [[ $1 =~ ^linux-image-[0-9] ]]; then
		echo "${1#linux-image-}"
	else
		echo "kernels: apt knows no kernel behind $1 (apt-get update first?)" >&2
		return 1
	fi
}

# progress LOG NAME prints each package's result as the guest finishes it,
# so a CI log shows the run moving.
progress() {
	local seen=0 n
	while sleep 5; do
		n=$(grep -c '^=== tcplens-kernels package .* exit' "$1" 2>/dev/null || true)
		[ "${n:-0}" -gt "$seen" ] || continue
		grep '^=== tcplens-kernels package .* exit' "$1" | sed -n "$((seen + 1)),${n}p" |
			sed "s|^=== tcplens-kernels package $ROOT/\(.*\) exit \(.*\) seconds \(.*\)|kernels: $2: \1: exit \2 in \3s|"
		seen=$n
	done
}

# oops_start LOG prints the line number where LOG's first kernel crash
# report begins; it fails when there is none.
oops_start() {
	grep -n -m1 -E 'Oops|BUG:|general protection fault|Kernel panic|kernel BUG' "$1" 2>/dev/null | cut -d: -f1 | grep .
}

# print_oops LOG prints LOG's first crash report (its first 60 lines), or
# its last 30 lines when it holds none.
print_oops() {
	local n
	if n=$(oops_start "$1"); then
		sed -n "${n},$((n + 59))p" "$1" | sed 's/^/    /'
	else
		tail -n 30 "$1" 2>/dev/null | sed 's/^/    /' || true
	fi
}

# shellcheck source=verdict.sh
. "$HERE/verdict.sh"

summary=()
failed_gate=0
while read -r name pkg policy; do
	case $name in '' | '#'*) continue ;; esac
	if [ $# -gt 0 ] && ! printf '%s\n' "$@" | grep -qxF "$name"; then continue; fi
	case $policy in gate | report) ;; *) echo "kernels: matrix: $name: policy must be gate or report, not '$policy'" >&2; exit 2 ;; esac
	if ! kver=$(kernel_version "$pkg"); then
		summary+=("$(printf '%-5s %-24s %-6s (policy %s)' "$name" "$pkg" BROKEN "$policy")")
		[ "$policy" = gate ] && failed_gate=1
		continue
	fi
	log=$DIR/logs/$name.log
	rm -f "$log" "$log.console" "$log.crashed" "$log.crashed.console"
	notes=""
	for attempt in 1 2; do
		echo "kernels: $name: booting $kver"
		start=$(date +%s)
		progress "$log" "$name" &
		progress_pid=$!
		set +e
		"$HERE/boot.sh" "$kver" "$log" -- "$HERE/guest.sh" "$BUILD" </dev/null
		rc=$?
		kill "$progress_pid" 2>/dev/null
		wait "$progress_pid" 2>/dev/null
		set -e
		secs=$(($(date +%s) - start))
		touch "$log"
		# A guest kernel that crashed (an oops, a panic) is booted once
		# more: under TCG, live patching of kernel text has been seen to
		# crash a guest (see guest.sh), which no program of ours can do on
		# hardware. The crash is printed and kept, and the verdict says so.
		[ "$rc" = 125 ] && [ "$attempt" = 1 ] && oops_start "$log.console" >/dev/null || break
		echo "kernels: $name: the guest kernel crashed after ${secs}s; its kernel log from the crash:"
		print_oops "$log.console"
		mv "$log" "$log.crashed" && mv "$log.console" "$log.crashed.console"
		notes="; the first boot crashed, log $log.crashed"
		echo "kernels: $name: booting it once more"
	done

	analyse "$log" "$ROOT"
	emulation=$(sed -n 's/^=== tcplens-kernels kernel .* emulation //p' "$log" | head -1)
	doctor=$(sed -n 's/^=== tcplens-kernels doctor exit //p' "$log" | head -1)

	echo "kernels: $name: doctor says:"
	sed -n '/^=== tcplens-kernels doctor$/,/^=== tcplens-kernels doctor exit/{/^===/d;s/^/    /;p}' "$log"
	if [ "$rc" = 125 ] || [ -z "$doctor" ]; then
		verdict=BROKEN
		echo "kernels: $name: the guest did not finish; its kernel log:"
		print_oops "$log.console"
	elif [ "$failed" -gt 0 ] || [ -n "$broken" ]; then
		verdict=FAIL
		echo "kernels: $name: failing tests:"
		[ -n "$failing" ] && printf "    %s\n" $failing
		if [ -n "$broken" ]; then
			echo "    packages that exited non-zero: $broken"
			# A panic or a timeout names no failing test: show its first lines
			# (a timeout lists the tests that were running).
			grep -A8 -E '^panic: ' "$log" | head -n 40 | sed 's/^/    /' || true
		fi
		# The output of each failing top-level test, for CI logs that keep nothing else.
		for t in $failing; do
			echo "kernels: $name: output of $t (each run):"
			test_output "$log" "$t"
		done
	else
		verdict=PASS
	fi
	for t in $flaky; do
		echo "kernels: $name: $t failed, then passed when run once more; its first run's output:"
		test_output "$log" "$t" first
	done
	[ -n "$flaky" ] && notes+="; flaky (passed on retry): ${flaky% }"
	line=$(printf '%-5s %-24s %-6s %d passed, %d failed, %d skipped in %ds (%s; policy %s; log %s%s)' \
		"$name" "$kver" "$verdict" "$passed" "$failed" "$skipped" "$secs" "${emulation:-?}" "$policy" "$log" "$notes")
	echo "kernels: $line"
	summary+=("$line")
	if [ "$verdict" != PASS ] && [ "$policy" = gate ]; then failed_gate=1; fi
done <"${TCPLENS_KERNELS_MATRIX:-$HERE/matrix}"

echo "kernels: summary"
printf '    %s\n' "${summary[@]}"
exit $failed_gate
