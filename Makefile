# The two entry points of the README: `make demo` and `make test`. Both set up .venv on first use from the lock
# (requirements/test.txt), so the environment that passed today is the one that installs tomorrow.
VENV ?= .venv
PY := $(VENV)/bin/python
LOCK := requirements/test.txt
DEMO ?= tests/data/demo.py:6:12
LATEST ?= .venv-latest

$(VENV)/.installed: pyproject.toml $(LOCK)
	python3 -m venv $(VENV)
	# Everything from the lock: torch at the version whose CPU wheel lies on this project's machines (an unpinned
	# torch would pull a multi-GB CUDA build), and the build backend, so no unlocked build environment is made.
	$(PY) -m pip install -q -r $(LOCK)
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	touch $@

.PHONY: setup demo test lint test-latest lock
setup: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/mercury-lsp demo $(DEMO)

# The pytest entry point, never `python -m pytest`: that puts the repository root on sys.path, where our
# kernels/ folder shadows Hugging Face's package of that name (tests/test_no_shadowing.py).
test: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	bash tests/install-system-packages.sh
	$(VENV)/bin/pytest -q --ignore=tests/editors  # editors/ci.sh runs those after installing nvim
	@if [ -x editors/ci.sh ]; then bash editors/ci.sh; fi

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

# The newest releases within pyproject.toml's ranges, no lock (torch stays at its CPU wheel): run before `make lock`.
test-latest:
	rm -rf $(LATEST)
	python3 -m venv $(LATEST)
	$(LATEST)/bin/pip install -q --upgrade pip setuptools wheel
	$(LATEST)/bin/pip install -q torch==2.13.0
	$(LATEST)/bin/pip install -q -e '.[test]'
	$(LATEST)/bin/pip freeze --exclude-editable > $(LATEST)/versions.txt
	$(LATEST)/bin/pytest -q --ignore=tests/editors
	@echo "make test-latest: green with $(LATEST)/versions.txt; 'make lock' moves the lock there."

# Move the lock to the newest releases (pip-tools). pip names the disk wheel torch==2.13.0+cpu; the lock says
# torch==2.13.0, which matches it here and the CPU wheel of PyTorch's own index elsewhere.
lock: $(VENV)/.installed
	$(VENV)/bin/pip-compile -q --upgrade --allow-unsafe --strip-extras --extra test --no-emit-index-url \
	  --no-emit-find-links -o $(LOCK) pyproject.toml requirements/test.in
	sed -i 's/^torch==\([0-9.]*\)+cpu$$/torch==\1/' $(LOCK)
