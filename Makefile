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
# 2 cores finish the suite in ~9.5-10.5 minutes (measured 2026-12-01: 560 s with the cache, 619 s
# without it, LAZYRICH_TEST_JAX_CACHE=0; a later session's machine took 617-639 s for nearly the
# same suite; fresh clones: 620 s at 7f61a58, 590 s at e372f92, 646 s at f1546ff, so the suite
# sits at the 10-minute line and varies by ~10% between runs). `make test PYTEST_WORKERS=0` runs them in one process.
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
