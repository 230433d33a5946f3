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
FUZZ_PKGS ?= ./pkg/conn ./pkg/ws
FUZZTIME ?= 10m
FUZZTIME_TEST ?= 10s

# edged flags for the wrk run of `make bench`. wrk holds 64 connections: with the default
# --socket-queue 8 most of them would wait in the backlog and evict each other's parked sockets
# (CONTRACT S13), which measures reconnection churn rather than request throughput.
BENCH_FLAGS ?= --socket-queue 128

SHELL_SCRIPTS := $(wildcard scripts/*.sh) .ci/run

.NOTPARALLEL:
.PHONY: build run test deps vet fmt-check shellcheck unit fuzz-short e2e fuzz bench lint clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/edged

run: build
	./$(BIN) serve

# test runs, in order: dependencies, vet, gofmt, shellcheck, unit tests with the race detector, the
# server tests on one CPU, a short run of each fuzz target, and the daemon end-to-end tests.
test: deps vet fmt-check shellcheck unit fuzz-short e2e

deps:
	bash scripts/install-test-deps.sh

vet:
	$(GO) vet ./...
	$(GO) vet -tags e2e ./test/e2e/

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

fuzz:
	@for pkg in $(FUZZ_PKGS); do \
		list=$$($(GO) test -list 'Fuzz.*' $$pkg); \
		for target in $$(grep '^Fuzz' <<<"$$list" || true); do \
			echo "fuzz $$pkg $$target for $(FUZZTIME)"; \
			$(GO) test -run '^$$' -fuzz="^$$target$$" -fuzztime=$(FUZZTIME) $$pkg; \
		done; \
	done

# The end-to-end tests build the daemon themselves (with -race here) and run it against real clients.
e2e:
	$(GO) test -race -count=1 -tags e2e ./test/e2e/

bench: build
	$(GO) test -bench . -benchmem -run '^$$' ./pkg/... ./internal/...
	bash scripts/bench-wrk.sh $(BIN) $(BENCH_FLAGS)

lint: vet fmt-check shellcheck

clean:
	rm -rf bin
