# The two set-up commands of the README: `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO ?= cargo

.PHONY: help build deps test unit compositions compat e2e lint crds demo bench

help:
	@echo "make demo   - local control plane + PostgreSQL + operator + a claim, then connect"
	@echo "make test   - lint, unit and CLI tests, then end-to-end tests on a real API server"
	@echo "make crds   - regenerate crds/ from the code"
	@echo "make bench  - scale benchmarks (long: BENCH_SIZES, BENCH_RUNS, ...), results in bench/results/"

deps:
	bash .ci/install-deps

build:
	$(CARGO) build --bins

# The workspace: the operator and the benchmark driver (bench/), so the
# benchmark keeps compiling and its pure parts stay tested.
lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	# The e2e target is `test = false` (it needs a plane), so --all-targets skips it.
	$(CARGO) clippy --test e2e -- -D warnings

unit:
	$(CARGO) test --lib --bins --test cli
	$(CARGO) test -p dbclaim-bench

# Every shipped composition against the CRDs of the kinds it composes:
# dbclaim's own (crds/) and the cloud operators' real ones (e2e/fetch-crds).
compositions: build
	"$${CARGO_TARGET_DIR:-target}/debug/dbclaim" validate --crds crds --crds "$$(e2e/fetch-crds)" compositions/*.yaml

# Today's CRDs against the last release's (compat/baseline/, see README
# "Upgrading the API"): no served version, field or accepted value may go.
compat: build
	"$${CARGO_TARGET_DIR:-target}/debug/dbclaim" crds --check-compat compat/baseline

e2e: build
	e2e/run-tests

test: lint unit compositions compat e2e

crds:
	$(CARGO) run -q -- crds --output-dir crds
	cp crds/*.yaml charts/dbclaim/crds/

demo: build
	e2e/demo

# Benchmarks at scale (bench/, issue 8): a fresh local control plane per run,
# the operator's release build as a separate process. Not part of `make test`.
# The defaults take about two hours; for a quick look:
#   make bench BENCH_SIZES=100 BENCH_PG_SIZES=none BENCH_RUNS=1 BENCH_IDLE=30
BENCH_SIZES ?= 100,1000,5000
BENCH_PG_SIZES ?= 100,1000
BENCH_RUNS ?= 3
BENCH_IDLE ?= 300
BENCH_ARGS ?=
BENCH_TARGET = $${CARGO_TARGET_DIR:-target}
# Baseline against new (issue 20): the operator built once at this commit
# (the one before the API-cost work) runs beside the new one, alternating,
# in quiet bursts of both compositions and the busy cluster ("none": skip).
BENCH_BASELINE ?= a2acda9
BENCH_COMPARE ?= 1000
BENCH_COMPARE_PG ?= 1000
BENCH_BUSY ?= 1000
BENCH_BASELINE_DIR = bench/.state/baseline-$(BENCH_BASELINE)

bench: deps
	$(CARGO) build --release -p dbclaim -p dbclaim-bench --bins
	if [ ! -x "$(BENCH_BASELINE_DIR)/target/release/dbclaim" ]; then \
		rm -rf "$(BENCH_BASELINE_DIR)/src" && mkdir -p "$(BENCH_BASELINE_DIR)/src" && \
		git archive "$(BENCH_BASELINE)" | tar -x -C "$(BENCH_BASELINE_DIR)/src" && \
		(cd "$(BENCH_BASELINE_DIR)/src" && CARGO_TARGET_DIR=../target $(CARGO) build --release -p dbclaim --bin dbclaim); \
	fi
	"$(BENCH_TARGET)/release/dbclaim-bench" run --sizes $(BENCH_SIZES) --postgres-sizes $(BENCH_PG_SIZES) \
		--runs $(BENCH_RUNS) --idle-secs $(BENCH_IDLE) --operator "$(BENCH_TARGET)/release/dbclaim" \
		--baseline-operator "$(BENCH_BASELINE_DIR)/target/release/dbclaim" --baseline-repo "$(BENCH_BASELINE_DIR)/src" \
		--compare-sizes $(BENCH_COMPARE) --compare-postgres-sizes $(BENCH_COMPARE_PG) --busy-sizes $(BENCH_BUSY) \
		--readme README.md $(BENCH_ARGS)
