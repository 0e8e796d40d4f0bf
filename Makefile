# The two set-up commands of the README: `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO ?= cargo

.PHONY: help build deps test unit e2e lint crds demo

help:
	@echo "make demo   - local control plane + PostgreSQL + operator + a claim, then connect"
	@echo "make test   - lint, unit and CLI tests, then end-to-end tests on a real API server"
	@echo "make crds   - regenerate crds/ from the code"

deps:
	bash .ci/install-deps

build:
	$(CARGO) build --bins

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

unit:
	$(CARGO) test --lib --bins --test cli

e2e: build
	e2e/run-tests

test: lint unit e2e

crds:
	$(CARGO) run -q -- crds --output-dir crds
	cp crds/*.yaml charts/dbclaim/crds/

demo: build
	e2e/demo
