# Two commands on a fresh machine: `make rehearse` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: rehearse test bench lint engine-doc clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

rehearse: $(STAMP)
	$(BIN)/cutover-bot rehearse examples/payments-tokenization.yaml

# One pytest worker per core (pytest-xdist); `PYTEST_WORKERS=0` runs in one process, as a single
# test file often is best run. Every worker has its own SQLite template and its own PostgreSQL
# database (tests/conftest.py), so workers never share a database.
PYTEST_WORKERS ?= auto

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

# docs/engine.md is generated from the transition table; the tests fail when it is stale.
engine-doc: $(STAMP)
	$(BIN)/cutover-bot engine doc -o docs/engine.md

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# The layer check lives in ../shared (present in CI, absent in a fresh clone): skipped, saying so.
LAYER_CHECK := ../shared/tools/check_layers.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict packets handlers store bot
	@if [ -f $(LAYER_CHECK) ]; then $(BIN)/python $(LAYER_CHECK); \
	else echo "lint: skipping the layer check: $(LAYER_CHECK) is absent (it is in CI)"; fi

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
