# Two commands do all the set-up: `make demo` (the main job on bundled synthetic data) and
# `make test` (the whole test suite). Each creates its own virtual environment from pyproject.toml.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test docs lint bench clean

# uv resolves the boto3/botocore/aiobotocore pins in seconds where pip backtracks for many minutes.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv

# the demo draws maps and runs on Dask: the core and every extra ([all])
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e ".[all]"
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e ".[dev]"
	touch $(VENV)/.installed $@

demo: $(VENV)/.installed
	$(BIN)/is2grid demo --out is2grid-demo

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest

# the documentation site, warnings as errors (the quickstart notebook runs during the build)
docs: $(VENV)/.installed-dev
	rm -rf docs/_build docs/generated
	$(BIN)/python -m sphinx -W --keep-going -b html docs docs/_build/html
	@echo "Site: docs/_build/html/index.html"

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks tools
	$(BIN)/ruff format --check src tests benchmarks tools
	$(BIN)/mypy

bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/bench_cloud.py
	$(BIN)/python benchmarks/bench_read.py
	$(BIN)/python benchmarks/bench_grid.py
	$(BIN)/python benchmarks/bench_scale.py
	$(BIN)/python benchmarks/bench_flight.py
	$(BIN)/python benchmarks/bench_give_back.py
	$(BIN)/python benchmarks/bench_explore.py
	$(BIN)/python benchmarks/bench_import.py

clean:
	rm -rf $(VENV) is2grid-demo .pytest_cache docs/_build docs/generated docs/notebooks
