# Entry points on a fresh machine (each creates .venv when needed):
#   make demo   the quickstart search on the embedded digits data (no network)
#   make test   the test suite
#   make lint   ruff check and pyink --check (settings in pyproject.toml); CI
#               runs it before test; `make format` applies pyink
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
WORKDIR ?= runs/quickstart

.PHONY: demo test lint format install clean

$(VENV)/.installed: setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[test,lint]"
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/gram-jax quickstart --workdir $(WORKDIR)

test: $(VENV)/.installed
	$(PY) -m pytest -q -n 2 --durations=15 tests

SOURCES := gram_jax tests benchmarks experiments

lint: $(VENV)/.installed
	$(PY) -m ruff check $(SOURCES)
	$(PY) -m pyink --check $(SOURCES)

format: $(VENV)/.installed
	$(PY) -m pyink $(SOURCES)

clean:
	rm -rf $(VENV) runs
