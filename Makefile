# Common tasks.  `make demo` runs the main job end to end; `make test` runs every test.
# Both work on a fresh machine: they install what they need (venv, Chromium, LHC-Forms, HAPI).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test unit integration browser setup lint typecheck check bench hapi-start hapi-stop clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

setup: $(STAMP)
	scripts/install-browser
	scripts/install-lforms
	scripts/hapi build
	scripts/keycloak install

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" scripts/demo

test: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest $(PYTEST_ARGS)

unit: $(STAMP)
	$(BIN)/python -m pytest -m "not integration and not browser" $(PYTEST_ARGS)

integration: $(STAMP)
	scripts/hapi build
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -m integration $(PYTEST_ARGS)

browser: $(STAMP)
	scripts/install-browser
	scripts/install-lforms
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -m browser $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests $(wildcard benchmarks)
	$(BIN)/ruff format --check src tests $(wildcard benchmarks)

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

bench: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m benchmarks

hapi-start:
	scripts/hapi start

hapi-stop:
	scripts/hapi stop

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache test-artifacts
