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

# With KEEL_LLM_API_KEY set, the reference project talks to a real OpenAI-compatible provider
# (KEEL_LLM_BASE_URL, default OpenAI; KEEL_LLM_MODEL, default gpt-4o-mini; KEEL_LLM_BACKUP_MODEL, the
# fallback, default gpt-4.1-mini); otherwise to the fake one.
serve: $(STAMP_RUN)
	@if [ -n "$$KEEL_LLM_API_KEY" ]; then \
		export KEEL_LLM_BASE_URL="$${KEEL_LLM_BASE_URL:-https://api.openai.com/v1}"; \
		export KEEL_LLM_MODEL="$${KEEL_LLM_MODEL:-gpt-4o-mini}"; \
		if [ "$$KEEL_LLM_MODEL" = gpt-4.1-mini ]; then backup=gpt-4o-mini; else backup=gpt-4.1-mini; fi; \
		export KEEL_LLM_BACKUP_MODEL="$${KEEL_LLM_BACKUP_MODEL:-$$backup}"; \
		echo "keel: real provider $$KEEL_LLM_BASE_URL, model $$KEEL_LLM_MODEL"; \
		exec $(BIN)/keel serve examples/inbox; \
	else \
		exec $(BIN)/keel serve examples/inbox --with-fake-llm; \
	fi

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
