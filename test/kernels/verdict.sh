# verdict.sh: how run.sh reads a guest's log (guest.sh's output), as
# functions it sources. kernels_test.go runs them on logs made by guest.sh
# with stand-in test binaries.

# analyse LOG ROOT sets, for the guest run in LOG (package directories
# shown relative to ROOT):
#   passed, skipped  top-level tests that passed (a flaky one included) or skipped
#   failed           top-level tests that failed, and failed their retry too
#   failing          their names
#   flaky            tests that failed, then passed when run once more
#   broken           packages that exited non-zero, unless their retry passed
analyse() {
	local log=$1 root=$2 tmp
	# Lists go through files, not process substitution: a guest's /dev
	# has no /dev/fd.
	tmp=$(mktemp -d)
	# The first run of every package, and apart from it the retries.
	sed '/^=== tcplens-kernels retry .* tests /,/^=== tcplens-kernels retry .* exit [0-9]/d' "$log" >"$tmp/first"
	sed -n '/^=== tcplens-kernels retry .* tests /,/^=== tcplens-kernels retry .* exit [0-9]/p' "$log" >"$tmp/retry"
	# Top-level tests only: subtests are indented.
	sed -n 's/^--- FAIL: \([^ ]*\) .*/\1/p' "$tmp/first" | sort -u >"$tmp/failed_first"
	sed -n 's/^--- PASS: \([^ ]*\) .*/\1/p' "$tmp/retry" | sort -u >"$tmp/passed_retry"
	flaky=$(comm -12 "$tmp/failed_first" "$tmp/passed_retry" | tr '\n' ' ')
	failing=$(comm -23 "$tmp/failed_first" "$tmp/passed_retry" | tr '\n' ' ')
	passed=$(($(grep -c '^--- PASS: ' "$tmp/first" || true) + $(echo "$flaky" | wc -w)))
	failed=$(echo "$failing" | wc -w)
	skipped=$(grep -c '^--- SKIP: ' "$tmp/first" || true)
	# A package that exits non-zero without a failing test (panic, timeout,
	# a TestMain failure) is broken too; one whose retry passed is not.
	sed -n 's/^=== tcplens-kernels package \(.*\) exit [1-9][0-9]* seconds.*/\1/p' "$tmp/first" | sort -u >"$tmp/exited"
	sed -n 's/^=== tcplens-kernels retry \(.*\) exit 0$/\1/p' "$tmp/retry" | sort -u >"$tmp/retried_ok"
	broken=$(comm -23 "$tmp/exited" "$tmp/retried_ok" | sed "s|^$root/||" | tr '\n' ' ')
	rm -rf "$tmp"
}

# test_output LOG TEST [first] prints the output of top-level test TEST in
# LOG, every run of it, or with "first" its first run only (a flaky test's
# failure). -test.v names the test before each stretch of its output
# (=== RUN/CONT/NAME), parallel tests included.
test_output() {
	awk -v t="$2" -v firstonly="${3:-}" '
		/^=== tcplens-kernels retry .* tests / { if (firstonly) skip = 1; next }
		/^=== tcplens-kernels retry .* exit [0-9]/ { skip = 0; top = ""; next }
		skip { next }
		/^=== (RUN|CONT|NAME|PAUSE) / { split($3, a, "/"); top = a[1]; next }
		/^=== tcplens-kernels / || /^(PASS|FAIL)$/ { top = ""; next }
		/^ *--- (PASS|FAIL|SKIP): / { split($3, a, "/"); if (a[1] == t && $2 == "FAIL:") print "    " $0; next }
		top == t { print "    " $0 }' "$1" | tail -n 80
}
