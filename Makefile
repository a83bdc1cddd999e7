# Two commands matter: `make run` (service + example job) and `make test` (the whole suite).
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup test lint typecheck imports pytest run serve clean

setup: $(STAMP)

# torch first, pinned: a later resolver step then finds it satisfied and pulls no CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	@if $(BIN)/pip list 2>/dev/null | grep -iE '^(nvidia|cuda)' ; then \
		echo "CUDA packages were installed: refusing" >&2; exit 1; fi
	touch $(STAMP)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check nas_service search_spaces workers tests benchmarks migrations

typecheck: setup
	$(BIN)/mypy

imports: setup
	$(BIN)/lint-imports

# Two test processes: much of a test's time is process and Ray start-up, when the other can
# compute. A file stays on one (its module fixtures are made once); PYTEST_WORKERS=0 runs the
# suite in this process.
PYTEST_WORKERS ?= 2
pytest: setup
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test: lint typecheck imports pytest

run: setup
	$(BIN)/python -m nas_service.quickstart

serve: setup
	$(BIN)/nas serve

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
