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

test: install
	$(BIN)/python -m pytest -q

test-slow: install
	$(BIN)/python -m pytest -q -m slow

bench: install
	PYTHON=$(BIN)/python benchmarks/run_all.sh

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) demo .pytest_cache
