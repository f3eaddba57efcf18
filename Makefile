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
# The example project keeps authentication on: `make serve` creates a development API key (runs:write,
# runs:read) once, in examples/inbox/.keel/dev-key (mode 600, not committed), and creates it again if
# the database no longer has it.
DEV_KEY := examples/inbox/.keel/dev-key

serve: $(STAMP_RUN)
	@mkdir -p examples/inbox/.keel
	@if [ ! -s $(DEV_KEY) ] || ! $(BIN)/keel keys list -p examples/inbox --json \
			| grep -q "\"prefix\": \"$$(cut -d_ -f2 $(DEV_KEY))\""; then \
		umask 077; $(BIN)/keel keys create --name "make serve (development)" --scope runs:write \
			--scope runs:read -p examples/inbox --json \
			| $(BIN)/python -c 'import json, sys; print(json.load(sys.stdin)["key"])' > $(DEV_KEY); \
	fi
	@echo "keel: API key for this server in $(DEV_KEY): -H \"authorization: Bearer \$$(cat $(DEV_KEY))\""
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
