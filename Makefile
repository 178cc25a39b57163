# Entry points on a fresh machine (each creates .venv when needed):
#   make demo   the quickstart search on the embedded digits data (no network)
#   make test   the test suite
#   make lint   ruff check (rules in pyproject.toml); CI runs it before test
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
WORKDIR ?= runs/quickstart

.PHONY: demo test lint install clean

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

lint: $(VENV)/.installed
	$(PY) -m ruff check gram_jax tests benchmarks experiments

clean:
	rm -rf $(VENV) runs
