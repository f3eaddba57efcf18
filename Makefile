# Keel: `make serve` and `make test` each set up .venv themselves on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_DEV := $(VENV)/.installed-dev

.PHONY: serve test lint typecheck pytest bench lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP_RUN): $(BIN)/python requirements.lock pyproject.toml
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

$(STAMP_DEV): $(STAMP_RUN) requirements-dev.lock
	$(BIN)/pip install --quiet -r requirements-dev.lock
	touch $@

serve: $(STAMP_RUN)
	$(BIN)/keel serve examples/inbox --with-fake-llm

lint: $(STAMP_DEV)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples

typecheck: $(STAMP_DEV)
	$(BIN)/mypy

pytest: $(STAMP_DEV)
	$(BIN)/python -m pytest

test: lint typecheck pytest

bench: $(STAMP_DEV)
	$(BIN)/python -m bench

# Regenerate the pinned lock files from pyproject.toml (needs network access to PyPI).
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet --upgrade pip
	.venv-lock/bin/pip install --quiet .
	.venv-lock/bin/pip freeze --exclude keel > requirements.lock
	.venv-lock/bin/pip install --quiet '.[dev]'
	.venv-lock/bin/pip freeze --exclude keel | grep -vxF -f requirements.lock > requirements-dev.lock || true
	rm -rf .venv-lock

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
