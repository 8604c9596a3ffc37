#!/bin/sh
# scripts/release.sh [OUTDIR]: static release binaries of tcplens for
# linux/amd64 and linux/arm64 (CGO_ENABLED=0: no libc needed on the target),
# with the version embedded, and a SHA256SUMS file. The BPF objects are
# little-endian and embedded in the binary, so both architectures carry the
# same ones.
#
# VERSION defaults to `git describe --tags --always --dirty`. LDFLAGS, if
# set, replaces the default "-s -w -X <cli.Version>=$VERSION".
set -eu
cd "$(dirname "$0")/.."
OUT=${1:-dist}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo devel)}
LDFLAGS=${LDFLAGS:-"-s -w -X github.com/tcplens/tcplens/internal/cli.Version=$VERSION"}
mkdir -p "$OUT"
for arch in amd64 arm64; do
	bin=$OUT/tcplens-$VERSION-linux-$arch
	CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath -ldflags "$LDFLAGS" -o "$bin" ./cmd/tcplens
	# A dynamically linked binary has a program interpreter (ld.so).
	if command -v readelf >/dev/null && readelf -l "$bin" | grep -q 'INTERP'; then
		echo "release: $bin is not static" >&2
		exit 1
	fi
	echo "release: $bin"
done
(cd "$OUT" && sha256sum tcplens-"$VERSION"-linux-* >SHA256SUMS)
echo "release: $OUT/SHA256SUMS"
