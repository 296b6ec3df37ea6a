# Two entry points: `make demo` and `make test`. Both build .venv from pyproject.toml:
# the demo installs only what it runs (the `demo` extra), the tests add the `dev` extra.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
HASH := $(shell sha1sum pyproject.toml | cut -c1-12)
DEMO_STAMP := $(VENV)/.demo-$(HASH)
DEV_STAMP := $(VENV)/.dev-$(HASH)

.PHONY: demo test lint typecheck unit venv bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[demo]'
	rm -f $(VENV)/.demo-* && touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,demo]'
	rm -f $(VENV)/.dev-* $(VENV)/.demo-* && touch $@ $(DEMO_STAMP)

venv: $(DEV_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/veilleur demo

lint: $(DEV_STAMP)
	$(BIN)/ruff check daemon tests bench
	$(BIN)/ruff format --check daemon tests bench

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

unit: $(DEV_STAMP)
	$(BIN)/pytest -q tests/unit

test: $(DEV_STAMP) lint typecheck
	$(BIN)/pytest -q -p no:cacheprovider

bench: $(DEV_STAMP)
	$(BIN)/python bench/engine.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
