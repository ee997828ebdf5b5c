# The only entry points a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-slow bench lint clean

install: $(STAMP)

# Reinstall only when the package metadata changes (the install is editable).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: install
	$(BIN)/lazyrich demo --out-dir demo

# Tests run in parallel workers (pytest-xdist) sharing a JAX compilation cache (tests/conftest.py):
# 2 cores finish the suite in ~10 minutes, 62% of it XLA compiling (measured 2026-12-01 with
# jax.monitoring's compile events: 861 of 1387 worker-seconds). That session's trims took the
# uncached suite from 690 s to 634 s, and fresh clones on that machine took 687, 629, 608, then
# 552 s as they landed (runs vary by ~10%: 560-646 s earlier); the next session's, with the
# checkpoint and Monte Carlo tests added, 557 and 573 s (1045 tests). `make test PYTEST_WORKERS=0` runs
# them in one process.
PYTEST_WORKERS ?= auto
test: install
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --maxprocesses=4

test-slow: install
	$(BIN)/python -m pytest -q -m slow

bench: install
	PYTHON=$(BIN)/python benchmarks/run_all.sh

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) demo .pytest_cache
