# edged: the one entry point. `make run` builds and starts the daemon; `make test` is everything CI runs.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build

GO ?= go
BIN := bin/edged
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.0.0-dev)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)

# Packages whose fuzz targets run: FUZZTIME each in `make fuzz`, FUZZTIME_TEST each in `make test`.
FUZZ_PKGS ?= ./pkg/conn ./pkg/ws ./internal/static ./internal/routes ./internal/topics ./cmd/edged
FUZZTIME ?= 10m
# An execution count, not a duration: a duration that expires while a fast target's workers are busy
# can fail the run with "context deadline exceeded" although nothing was found.
FUZZTIME_TEST ?= 100000x

# make bench (bench/cmd/suite): BENCH_ROUNDS interleaved rounds of BENCH_DURATION per run, medians
# reported into BENCH_OUT. BENCH_FLAGS are the pool flags of the tuned edged rows: the socket queue
# holds every wrk connection (256 at most); with the default --socket-queue 8 the others would wait in
# the backlog, which measures that bound rather than throughput (the table shows the defaults too).
BENCH_ROUNDS ?= 5
BENCH_DURATION ?= 3s
BENCH_OUT ?= docs/BENCHMARKS.md
BENCH_FLAGS ?= --workers 4 --socket-queue 1024

SHELL_SCRIPTS := $(wildcard scripts/*.sh) .ci/run

# Cross builds (make cross): bin/edged-linux-NAME for each NAME:GOARCH:GOARM. armv6 runs on every
# Raspberry Pi (a Pi Zero or Pi 1 has an ARM1176 core); armv7 only from the Pi 2 on.
CROSS_TARGETS := amd64:amd64: arm64:arm64: armv6:arm:6 armv7:arm:7

# Debian packages (make deb, CONTRACT P2): DEB_ARCH:cross NAME. armhf ships the GOARM=6 build, so that
# one package runs on every Pi. DEB_VERSION is VERSION mapped to a valid Debian version by
# scripts/deb-version.sh (0e62b1f-dirty, 96 commits deep -> 0.0.0~git96.0e62b1f.dirty,
# v1.2.3-4-g0e62b1f -> 1.2.3+git4.0e62b1f).
DEB_TARGETS := amd64:amd64 arm64:arm64 armhf:armv6
DEB_CROSS := amd64:amd64: arm64:arm64: armv6:arm:6
DEB_VERSION ?= $(shell bash scripts/deb-version.sh '$(VERSION)')
DEB_DIR := build
NFPM ?= $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2

.NOTPARALLEL:
.PHONY: build run test deps vet fmt-check shellcheck unit fuzz-short e2e fuzz bench lint clean \
	cross deb test-systemd test-arm test-packages bench-tools bench-smoke soak soak-short

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/edged

run: build
	./$(BIN) serve

# test runs, in order: dependencies, vet, gofmt, shellcheck, unit tests with the race detector, the
# server tests on one CPU, a short run of each fuzz target, the daemon end-to-end tests, a 20-second
# soak, a smoke run of the benchmark suite, the systemd units offline, every package's tests as ARM binaries under
# qemu-user, and the Debian packages.
test: deps vet fmt-check shellcheck unit fuzz-short e2e soak-short bench-smoke test-systemd test-arm test-packages

deps:
	bash scripts/install-test-deps.sh

vet:
	$(GO) vet ./...
	$(GO) vet -tags e2e ./test/e2e/
	$(GO) vet -tags soak ./test/soak/
	$(GO) vet -tags testroutes ./internal/routes/

fmt-check:
	@out=$$(gofmt -l .); if [[ -n $$out ]]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

shellcheck:
	shellcheck $(SHELL_SCRIPTS)

unit:
	$(GO) test -race -count=1 ./...
	GOMAXPROCS=1 $(GO) test -count=1 ./pkg/server/

# One target per invocation: go test -fuzz accepts a single target.
fuzz-short:
	@$(MAKE) --no-print-directory fuzz FUZZTIME=$(FUZZTIME_TEST)

# -timeout=0: go test's default 10m limit would otherwise end a 10m fuzz run with "test timed out".
fuzz:
	@for pkg in $(FUZZ_PKGS); do \
		list=$$($(GO) test -list 'Fuzz.*' $$pkg); \
		for target in $$(grep '^Fuzz' <<<"$$list" || true); do \
			echo "fuzz $$pkg $$target for $(FUZZTIME)"; \
			$(GO) test -run '^$$' -fuzz="^$$target$$" -fuzztime=$(FUZZTIME) -timeout=0 $$pkg; \
		done; \
	done

# The end-to-end tests build the daemon themselves (with -race here) and run it against real clients.
e2e:
	$(GO) test -race -count=1 -tags e2e ./test/e2e/

# The soak test (test/soak): SOAK_DURATION of mixed load with clients that disconnect at random points,
# then the daemon's descriptors, goroutines and RSS against their baseline and its request counts
# against the clients'. make test runs a short one; make soak the long one.
SOAK_DURATION ?= 2m
SOAK_DURATION_TEST ?= 20s
soak:
	$(GO) test -tags soak -count=1 -timeout 0 -v ./test/soak/ -args -soak.duration=$(SOAK_DURATION)

soak-short:
	@$(MAKE) --no-print-directory soak SOAK_DURATION=$(SOAK_DURATION_TEST)

# The benchmark tools, from the bench module (a go.mod of its own keeps fasthttp and gorilla out of
# edged's): the reference servers, the WebSocket load generator, the idle-connection holder, the suite.
bench-tools:
	cd bench && CGO_ENABLED=0 $(GO) build -trimpath -o ../bin/bench/ ./cmd/peer ./cmd/wsload ./cmd/idleconns ./cmd/latency ./cmd/suite

# edged against net/http, fasthttp, nginx and gorilla/websocket on loopback: one table of medians
# with ratios, memory, system calls per request, allocations, ARM binary sizes and a CPU profile,
# written into BENCH_OUT. About 10 minutes with the defaults; see docs/BENCHMARKS.md.
bench: build bench-tools
	bin/bench/suite -edged $(BIN) -go $(GO) -edged-flags '$(BENCH_FLAGS)' -rounds $(BENCH_ROUNDS) \
		-duration $(BENCH_DURATION) -out $(BENCH_OUT)

# Every server started and each workload run once for 1 s at 4 connections, so that the suite cannot
# rot: it fails when a server or a run fails; nothing is compared.
bench-smoke: build bench-tools
	bin/bench/suite -smoke -edged $(BIN) -go $(GO) -edged-flags '$(BENCH_FLAGS)'

lint: vet fmt-check shellcheck

# Static binaries for the boards edged runs on; `edged version` names the GOARCH and its level.
cross:
	@for t in $(CROSS_TARGETS); do \
		IFS=: read -r name arch arm <<<"$$t"; \
		echo "cross: bin/edged-linux-$$name (GOARCH=$$arch$${arm:+ GOARM=$$arm})"; \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch GOARM=$$arm $(GO) build -trimpath -ldflags "$(LDFLAGS)" \
			-o bin/edged-linux-$$name ./cmd/edged; \
	done

# $(DEB_DIR)/edged_$(DEB_VERSION)_{amd64,arm64,armhf}.deb with nfpm. packaging/nfpm.yaml reads ARCH
# and VERSION from the environment and its files from build/stage/, where each run puts the binary of
# its architecture. The man page and the changelog are compressed with gzip -9n (no name or time stamp:
# the same input gives the same bytes).
deb:
	@if [[ -z '$(DEB_VERSION)' ]]; then echo "deb: no Debian version for VERSION=$(VERSION)" >&2; exit 1; fi
	@$(MAKE) --no-print-directory cross CROSS_TARGETS='$(DEB_CROSS)'
	rm -rf build/stage $(DEB_DIR)/edged_*.deb
	mkdir -p build/stage $(DEB_DIR)
	gzip -9n <packaging/debian/edged.8 >build/stage/edged.8.gz
	gzip -9n <packaging/debian/changelog >build/stage/changelog.gz
	@for t in $(DEB_TARGETS); do \
		IFS=: read -r arch name <<<"$$t"; \
		echo "deb: $(DEB_DIR)/edged_$(DEB_VERSION)_$$arch.deb from bin/edged-linux-$$name"; \
		cp bin/edged-linux-$$name build/stage/edged; \
		ARCH=$$arch VERSION='$(DEB_VERSION)' $(NFPM) pkg --packager deb --config packaging/nfpm.yaml \
			--target $(DEB_DIR)/; \
	done

# systemd-analyze verify and security on the units (CONTRACT P1), and edged's system calls under
# strace against the unit's SystemCallFilter.
test-systemd: build
	bash scripts/test-systemd.sh $(BIN)

# Every package's tests as ARM binaries under qemu-user (CONTRACT P3): 32-bit ARMv6 on the Pi Zero's
# core (a GOARMv7 instruction or a misaligned 64-bit atomic faults there) and arm64. -trimpath as in
# make cross, so that the packages compiled for the tests serve make deb too (about 40 s per
# architecture on a cold cache). The tests themselves take about 35 s under each emulator.
test-arm:
	CGO_ENABLED=0 GOARCH=arm GOARM=6 $(GO) test -trimpath -count=1 -exec 'qemu-arm-static -cpu arm1176' ./...
	CGO_ENABLED=0 GOARCH=arm64 $(GO) test -trimpath -count=1 -exec qemu-aarch64-static ./...

# Contents, lintian, maintainer scripts, the ARM binaries under qemu, install and purge in a throwaway
# root, and the packaged daemon's memory against the unit's MemoryMax (CONTRACT P2).
test-packages: deb
	bash scripts/test-packages.sh $(DEB_DIR) '$(DEB_VERSION)'

clean:
	rm -rf bin $(DEB_DIR)
