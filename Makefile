# depin-compute developer entry points. `make setup` installs everything (tools/setup.sh).
SHELL := /bin/bash
.DEFAULT_GOAL := help

# anvil/cast/solcjs from npm, ape/pytest from the project venv.
export PATH := $(CURDIR)/node_modules/.bin:$(CURDIR)/.venv/bin:$(PATH)

# The 30 slowest test phases are listed at the end of every run (where CI time goes).
PYTEST_ARGS ?= --durations=30
# `make test` runs the suite in PYTEST_WORKERS processes (pytest-xdist), each taking whole test files
# so that a module's fixtures (a devnet, an anvil) start once; most tests wait on a chain, a container
# or a devnet, so workers beyond the cores still help: on two cores, three workers ran a fresh
# clone's suite in 1,112 s against 1,388 s with two (stop 42), and four in 1,486 s against 1,683 s
# with three (2026-12-07, both cores busy 96-100 % of the run with four). PYTEST_WORKERS=0: one process.
PYTEST_WORKERS ?= 4
PYTEST_XDIST := $(if $(filter-out 0,$(PYTEST_WORKERS)),-n $(PYTEST_WORKERS) --dist loadfile)
# pytest exits 5 when it collects no tests. That is a failure here (CI must run real tests);
# set ALLOW_NO_TESTS=1 to accept it, e.g. while the test suite is still being written.
ALLOW_NO_TESTS ?= 0
# Extra slither arguments for `make slither` (tools/slither_gate.py fixes solc, remappings and filters).
SLITHER_ARGS ?=

.PHONY: help demo sim devnet-down setup compile artifacts lint test test-loaded fresh-check slither bench bench-executor bench-load bench-all clean distclean

# The README's first command: installs what is missing, brings the devnet up (state in .devnet/)
# and runs the four demo scenarios (DEMO_ARGS="--scenario wash" picks one); exits non-zero with the reason if a step fails.
DEMO_ARGS ?=
demo: setup
	.venv/bin/depin demo $(DEMO_ARGS)

devnet-down:
	.venv/bin/depin devnet down

# Every attack strategy as agents on a fresh anvil with the default parameters (depinctl/sim/):
# one row per strategy, attacker EV per job < 0 or the target fails. SIM_ARGS="--json sim.json".
SIM_ARGS ?=
sim: setup
	.venv/bin/depin sim $(SIM_ARGS)

help:
	@echo "make demo      setup, then the local devnet demo: honest job, cheater slashed, lazy verifier caught, wash trade (DEMO_ARGS=...)"
	@echo "make sim       every attack strategy on a fresh anvil: attacker EV per job, honest loss, overhead (SIM_ARGS=--json F)"
	@echo "make setup     install Debian packages, node tools, .venv, .venv-slither, solc and the job init (idempotent)"
	@echo "make compile   ape compile"
	@echo "make artifacts fresh compile, then write the shipped ABIs/bytecode in depin/artifacts/"
	@echo "make lint      ruff, lint-imports (layers), mypy against tools/mypy-baseline.txt, forge fmt --check"
	@echo "make test      setup, lint, slither gate, then pytest tests (PYTEST_ARGS=..., PYTEST_WORKERS=4, ALLOW_NO_TESTS=1)"
	@echo "make fresh-check  the newcomer check: clone HEAD into a temp folder, setup from nothing, demo, devnet down"
	@echo "make test-loaded  the executor and devnet tests 3 times in a row with 2 busy loops per core (LOADED_ARGS=...)"
	@echo "make slither   slither gate: fails on High/Medium findings not in slither-triage.json (SLITHER_ARGS=...)"
	@echo "make bench     gas benchmark: each operation, the optimistic path, the batch calls in batches of 20 (scripts/bench_gas.py)"
	@echo "make bench-indexer  indexer benchmark: backfill vs the same logs read raw, live lag, Redis bytes/job (BENCH_INDEXER_ARGS=\"--jobs N --json F\")"
	@echo "make bench-executor  executor benchmark: post->submitted latency and jobs/min vs plain container runs, interleaved (BENCH_EXECUTOR_ARGS=\"--json F\")"
	@echo "make bench-load  8 providers, 500 jobs from 4 requesters: jobs/min, fairness, post->finalized p50/p95 (BENCH_LOAD_ARGS=...)"
	@echo "make bench-selector  output selector: glob tests and seconds, deep / adversarial at the work cap / 65,536 entries (BENCH_SELECTOR_ARGS=\"--json F\")"
	@echo "make bench-all   every benchmark (gas, indexer, executor, load, selector, sim): one report in BENCH_OUT (default ./bench-out)"
	@echo "make devnet-down  stop the devnet the demo started (depin devnet down)"
	@echo "make clean     remove build outputs and caches (distclean also removes venvs and node_modules)"

setup:
	bash tools/setup.sh

compile: setup
	ape compile

# The ABIs and bytecode shipped in the package (tests/test_artifacts.py checks them). The export
# compiles a temporary copy of the project: ape's incremental .build can be stale (see the tool).
artifacts: compile
	.venv/bin/python tools/export_artifacts.py

# The lint and type checks (tests/test_lint.py: ruff, lint-imports, the mypy baseline, forge fmt) and
# the boundaries import-linter cannot see (tests/test_layers.py). `make test` runs them first and
# then leaves them out of the main run.
LINT_TESTS := tests/test_lint.py tests/test_layers.py
lint: setup
	.venv/bin/pytest -q -p no:cacheprovider $(LINT_TESTS)

# The slither gate runs beside the test suite (it needs one core for about 40 s, while the first
# test modules mostly wait on their devnets and anvils); its output is printed after the tests, and
# `make test` fails if either fails.
test: setup lint
	@slither_log=$$(mktemp); slither_pid=; \
	if [ "$${SKIP_SLITHER:-0}" = 1 ]; then echo "make test: slither gate SKIPPED (SKIP_SLITHER=1)" >&2; \
	else .venv/bin/python tools/slither_gate.py >"$$slither_log" 2>&1 & slither_pid=$$!; fi; \
	rc=0; .venv/bin/pytest $(PYTEST_XDIST) $(PYTEST_ARGS) $(addprefix --ignore=,$(LINT_TESTS)) tests || rc=$$?; \
	if [ $$rc -eq 5 ]; then \
	  if [ "$(ALLOW_NO_TESTS)" = 1 ]; then echo "make test: no tests collected (accepted: ALLOW_NO_TESTS=1)"; rc=0; \
	  else echo "make test: pytest collected no tests; failing (set ALLOW_NO_TESTS=1 to accept)" >&2; fi; \
	fi; \
	if [ -n "$$slither_pid" ]; then \
	  src=0; wait $$slither_pid || src=$$?; echo "==> slither gate (run beside the tests):"; cat "$$slither_log"; \
	  if [ $$src -ne 0 ]; then echo "make test: the slither gate failed (exit $$src)" >&2; [ $$rc -ne 0 ] || rc=$$src; fi; \
	fi; \
	rm -f "$$slither_log"; exit $$rc

# The newcomer check (tools/fresh_clone_check.sh): a fresh clone of HEAD installs, demos and stops.
fresh-check:
	bash tools/fresh_clone_check.sh

# The slow tests with the cores busy (tools/loaded_tests.sh), e.g. LOADED_ARGS="5 tests/executor".
LOADED_ARGS ?=
test-loaded: setup
	bash tools/loaded_tests.sh $(LOADED_ARGS)

slither: setup
	.venv/bin/python tools/slither_gate.py $(if $(strip $(SLITHER_ARGS)),-- $(SLITHER_ARGS))

# Gas of each job-market operation and of the optimistic path (fresh contracts on a throwaway anvil,
# started by scripts/with_anvil.py with the project's patient readiness wait, not ape's 20 s one).
bench: setup
	.venv/bin/python scripts/with_anvil.py ape run bench_gas --network ethereum:local:foundry

# Indexer backfill rate against the raw eth_getLogs rate, live lag and Redis memory per job, on a
# throwaway anvil + redis-server (scripts/bench_indexer.py; e.g. BENCH_INDEXER_ARGS="--jobs 2000").
.PHONY: bench-indexer
bench-indexer: setup
	.venv/bin/python scripts/bench_indexer.py $(BENCH_INDEXER_ARGS)

# Executor overhead against plain container runs of the same image (scripts/bench_executor.py).
bench-executor: setup
	.venv/bin/python scripts/bench_executor.py $(BENCH_EXECUTOR_ARGS)

# Many providers (scripts/bench_load.py): 8 provider executors (concurrency 1), 500 jobs from 4
# requesters on a devnet-like stack; jobs/min, share per provider, post->finalized p50/p95.
bench-load: setup
	.venv/bin/python scripts/bench_load.py $(BENCH_LOAD_ARGS)

# The output selector's cost: glob tests and seconds for a deep, an adversarial and a wide case.
.PHONY: bench-selector
bench-selector: setup
	.venv/bin/python scripts/bench_selector.py $(BENCH_SELECTOR_ARGS)

# Every benchmark, one after the other, and one report (JSON + markdown) in BENCH_OUT.
BENCH_OUT ?= $(CURDIR)/bench-out
BENCH_ALL_ARGS ?=
bench-all: setup
	BENCH_OUT=$(BENCH_OUT) .venv/bin/python scripts/bench_report.py $(BENCH_ALL_ARGS)

clean:
	rm -rf .build contracts/.cache crytic-export .pytest_cache .hypothesis .mypy_cache .ruff_cache .import_linter_cache build dist *.egg-info
	find . -name __pycache__ -type d -not -path './.venv*' -not -path './node_modules/*' -prune -exec rm -rf {} +

distclean: clean
	rm -rf .venv .venv-slither .venv-lint node_modules executor/depin-init executor/depin-init.stamp
