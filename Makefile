# The README's two commands: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
PYTEST_ARGS ?=

.PHONY: demo test install lint typecheck bench clean

# torch is pinned and installed first: a looser requirement pulls a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml setup.py src/taxonomist/features/_ngrams.pyx src/taxonomist/models/_svm.pyx
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e ".[torch,dev]"
	touch $@

install: $(VENV)/.installed

# Trains the demo model, then serves it at http://127.0.0.1:8000 (Ctrl-C stops it).
demo: install
	$(VENV)/bin/taxonomist demo

# The store tests also run against PostgreSQL: scripts/test-postgres.sh starts a throwaway
# server on a loopback port when PostgreSQL is installed (.ci/run installs it).
test: install
	TAXONOMIST_TEST_DATABASE_URL=$${TAXONOMIST_TEST_DATABASE_URL:-$$(bash scripts/test-postgres.sh)} \
		$(VENV)/bin/pytest --timeout 900 $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

typecheck: install
	$(VENV)/bin/mypy src

bench: install
	$(PY) bench/core.py
	$(PY) bench/api.py
	$(PY) bench/retrieval.py
	$(PY) bench/contention.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-output
