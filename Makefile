# The two entry points of the README: `make demo` and `make test`. Both set up .venv on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO ?= tests/data/demo.py:6:12

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	# Pinned: where pip finds this version's CPU wheel on disk (this project's machines) it takes it; an
	# unpinned torch would pull a multi-GB CUDA build from PyPI.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	touch $@

.PHONY: setup demo test lint
setup: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/mercury-lsp demo $(DEMO)

test: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q --ignore=tests/editors  # editors/ci.sh runs those after installing nvim
	@if [ -x editors/ci.sh ]; then bash editors/ci.sh; fi

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
