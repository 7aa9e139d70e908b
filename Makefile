# neuromod: the two commands of the README, and a few helpers.
#
#   make notebooks   set up .venv if needed, execute every notebook (quick profile) in place,
#                    write results/summary.md
#   make test        set up .venv if needed, run the whole test suite (what CI runs)
#
# Set-up happens once: .venv is (re)installed only when pyproject.toml or the pinned
# constraints change.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.neuromod-installed
PIP_FLAGS ?= --disable-pip-version-check --progress-bar off

.PHONY: setup notebooks test test-slow lint lab list clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements/constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) -c requirements/constraints.txt -e ".[dev]"
	@touch $@

notebooks: $(STAMP)
	$(PY) -m neuromod_lib run all --in-place

test: $(STAMP)
	$(PY) -m pytest

test-slow: $(STAMP)
	$(PY) -m pytest -m slow

lint: $(STAMP)
	$(VENV)/bin/ruff check .

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

list: $(STAMP)
	$(PY) -m neuromod_lib list

clean:
	rm -rf results/notebooks results/failed .pytest_cache
