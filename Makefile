# The two commands of the README:
#   make demo   the main job (simulated rig, closed loop, panel)
#   make test   install everything the tests need, then run the whole suite
# Plain pip into a local virtual environment; nothing else is required.

VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed

.PHONY: test demo install system-deps lint bench clean

test: install system-deps lint
	$(VENV)/bin/pytest

demo: install
	$(VENV)/bin/chiptwin demo

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

system-deps:
	./scripts/system-deps.sh

# the layers (import-linter), lint and format (ruff), types on the typed boundaries (mypy)
lint: install
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# Benchmarks are not part of the test suite: they take minutes and print tables.
bench: install
	for b in benchmarks/bench_*.py; do $(PY) -m benchmarks.$$(basename $$b .py) || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache
