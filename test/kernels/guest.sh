#!/bin/sh
# guest.sh BUILD-DIR: what test/kernels/run.sh runs inside each kernel, as
# root: `tcplens doctor`, then every package's prebuilt test binary in its
# package directory. BUILD-DIR/packages lists "BINARY DIR" per line.
# Output is parsed by run.sh; the "=== tcplens-kernels" lines are its markers.
B=$1
export TCPLENS_BIN=$B/tcplens TCPLENS_REQUIRE_PRIVILEGED=1
echo "=== tcplens-kernels kernel $(uname -r) emulation ${TCPLENS_EMULATION:-none}"
echo "=== tcplens-kernels doctor"
"$TCPLENS_BIN" doctor
echo "=== tcplens-kernels doctor exit $?"
while read -r bin dir; do
	start=$(date +%s)
	echo "=== tcplens-kernels package $dir"
	(cd "$dir" && "$B/$bin" -test.v -test.count=1 -test.timeout="${TCPLENS_KERNELS_TEST_TIMEOUT:-15m}" ${TCPLENS_KERNELS_TESTARGS:-} 2>&1)
	echo "=== tcplens-kernels package $dir exit $? seconds $(($(date +%s) - start))"
done <"$B/packages"
