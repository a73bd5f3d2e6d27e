# Two user commands: `make demo` and `make test`. Each builds .venv from scratch when missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
CONSTRAINTS := -c constraints.txt

.PHONY: demo test venv clean bench

$(VENV)/.installed-base: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(CONSTRAINTS) -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed-base
	$(PIP) install -q $(CONSTRAINTS) -e '.[dev]'
	touch $@

venv: $(VENV)/.installed-dev

demo: $(VENV)/.installed-base
	$(VENV)/bin/topo demo

test: $(VENV)/.installed-dev
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -n 2 topo analysis tests

bench: $(VENV)/.installed-base
	$(PY) benchmarks/bench_layers.py

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache
