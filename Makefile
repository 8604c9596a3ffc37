# tcplens builds. The BPF objects are committed, so none of this needs clang;
# `go generate ./...` rebuilds them when bpf/ changes.
#
#   make            build ./tcplens for this machine
#   make release    static binaries for linux/amd64 and linux/arm64 in dist/
#
# The version and commit are embedded with -ldflags, so `tcplens version`
# names them even where Go's own VCS stamping is off (-buildvcs=false,
# a source tarball, a container build without .git).

PKG      := github.com/tcplens/tcplens/internal/cli
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo unknown)
COMMIT   ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)$(shell git diff --quiet HEAD 2>/dev/null || echo -dirty)
LDFLAGS  := -s -w -X $(PKG).Version=$(VERSION) -X $(PKG).Commit=$(COMMIT)
GOFLAGS_BUILD := -trimpath -ldflags "$(LDFLAGS)"
RELEASE_ARCHES := amd64 arm64

.PHONY: build release clean

build:
	go build $(GOFLAGS_BUILD) -o tcplens ./cmd/tcplens

# Static: CGO_ENABLED=0 gives a binary with no libc dependency, which runs on
# any Linux of the architecture (tcplens needs no cgo).
release: $(RELEASE_ARCHES:%=dist/tcplens-linux-%)

dist/tcplens-linux-%: FORCE
	@mkdir -p dist
	CGO_ENABLED=0 GOOS=linux GOARCH=$* go build $(GOFLAGS_BUILD) -o $@ ./cmd/tcplens

.PHONY: FORCE
FORCE:

clean:
	rm -rf tcplens dist
