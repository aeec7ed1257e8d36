# Common tasks.  `make demo` runs the main job end to end; `make test` runs every test.
# Both work on a fresh machine: they install what they need (venv, Chromium, LHC-Forms, HAPI,
# Medplum's router).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The build users get from `pip install .`: the summary's hot path compiled by mypyc (setup.py).
# The development venv above is an editable, pure-Python install.
COMPILED_VENV ?= .venv-compiled

.PHONY: demo test unit integration browser setup lint typecheck check bench compiled compiled-test hapi-start hapi-stop clean

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
	scripts/medplum install
	scripts/postgres install

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" scripts/demo

# Every test against the development install, then the unit and fuzz tests again against the
# compiled build that `pip install .` makes.
test: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest $(PYTEST_ARGS)
	$(MAKE) compiled-test

unit: $(STAMP)
	$(BIN)/python -m pytest -m "not integration and not browser" $(PYTEST_ARGS)

integration: $(STAMP)
	scripts/hapi build
	scripts/medplum install
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

compiled:
	rm -rf $(COMPILED_VENV)
	# setuptools builds in build/ and would ship modules left there by an earlier build.
	rm -rf build/lib build/lib.* build/bdist.* build/temp.* build/rejection_fhir build/__native*
	$(PY) -m venv $(COMPILED_VENV)
	$(COMPILED_VENV)/bin/python -m pip install -q --upgrade pip
	RFHIR_REQUIRE_COMPILED=1 $(COMPILED_VENV)/bin/python -m pip install -q '.[dev]'

# Unit and fuzz tests against the compiled build (tests/unit/test_compiled.py checks it is).
compiled-test: compiled
	RFHIR_EXPECT_COMPILED=1 PATH="$(CURDIR)/$(COMPILED_VENV)/bin:$$PATH" \
		$(COMPILED_VENV)/bin/python -m pytest -m "not integration and not browser" $(PYTEST_ARGS)

# Measures the compiled build, what `pip install .` gives.
bench: setup compiled
	PATH="$(CURDIR)/$(COMPILED_VENV)/bin:$$PATH" $(COMPILED_VENV)/bin/python -m benchmarks

hapi-start:
	scripts/hapi start

hapi-stop:
	scripts/hapi stop

clean:
	rm -rf out build .pytest_cache .mypy_cache .ruff_cache test-artifacts $(COMPILED_VENV)
