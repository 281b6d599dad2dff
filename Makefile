# deltaflow — every target works on a fresh clone: it makes .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: test lint format demo up screenshots bench fuzz clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

# The suite on TEST_WORKERS processes (pytest-xdist). The machine has 2 cores, but many tests
# wait on services they start and stop, so a third process fills those waits. Modules that share
# a service carry an xdist_group (--dist loadgroup keeps each group on one process), and the
# longest tests are collected first (tests/conftest.py), an order that --no-loadscope-reorder keeps.
# The 15 slowest tests are listed at the end, to see what a change made slower.
TEST_WORKERS ?= 3
test: lint
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder --durations=15

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

demo: $(STAMP)
	$(BIN)/deltaflow demo

up: $(STAMP)
	$(BIN)/deltaflow up

# The README's dashboard pictures, taken by the browser tests (which leave all of theirs in
# var/screenshots/).
screenshots: $(STAMP)
	$(BIN)/pytest -q tests/browser
	mkdir -p docs/screenshots
	cp var/screenshots/jobs.png var/screenshots/job.png var/screenshots/job-moons.png \
		var/screenshots/batch.png var/screenshots/batch-ladder.png var/screenshots/batch-pbt.png \
		var/screenshots/health.png var/screenshots/compare.png var/screenshots/compare-batch.png \
		var/screenshots/compare-parallel.png docs/screenshots/

# A long fuzz of the whole API (tests/api/test_fuzz.py; CI runs it with a few examples per
# operation). FUZZ_EXAMPLES sets how many; PostgreSQL and Redis are needed for the second set-up.
FUZZ_EXAMPLES ?= 1000
fuzz: $(STAMP)
	DELTAFLOW_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest -q -p no:cacheprovider tests/api/test_fuzz.py

$(VENV)/.installed-bench: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	touch $@

bench: $(VENV)/.installed-bench
	$(BIN)/python bench/engine.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .hypothesis
