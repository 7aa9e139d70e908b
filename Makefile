# neuromod: the two commands of the README, and a few helpers.
#
#   make notebooks   set up .venv if needed, execute every notebook (quick profile) in place,
#                    write results/summary.md
#   make twins       bring each notebook and its py:percent twin (notebooks/*.py) in sync
#   make test        set up .venv if needed, run the whole test suite (what CI runs)
#
# Set-up happens once: .venv is (re)installed only when pyproject.toml or the pinned
# constraints change. `make test` also needs a browser for tests/test_browser.py: Debian's
# Chromium, installed with apt the first time (`make browser`; sudo when not root). Without apt
# the browser test is skipped with a note on how to get one (under CI=true it fails instead).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.neuromod-installed
PIP_FLAGS ?= --disable-pip-version-check --progress-bar off
CHROMIUM := /usr/bin/chromium
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup browser notebooks twins test test-slow test-browser lint lab list clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements/constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) -c requirements/constraints.txt -e ".[dev]"
	@touch $@

# Debian's Chromium for the browser test (Playwright drives it; its own browser download is never
# used). Nothing to do when it is there or when NEUROMOD_CHROMIUM names another browser. A failed
# install only warns: the test then skips, or fails under CI=true.
browser:
	@if [ -n "$$NEUROMOD_CHROMIUM" ]; then \
	  echo "browser test: using $$NEUROMOD_CHROMIUM (NEUROMOD_CHROMIUM)"; \
	elif [ -x $(CHROMIUM) ]; then \
	  :; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  echo "browser test: installing Debian's chromium ($(CHROMIUM)) with apt-get"; \
	  { $(SUDO) apt-get update -q && \
	    $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium; } \
	  || echo "WARNING: could not install chromium; tests/test_browser.py will be skipped (fails under CI=true)"; \
	else \
	  echo "NOTE: no apt-get here to install Chromium for tests/test_browser.py, which will be skipped" \
	    "(fails under CI=true): install Chromium or Chrome and set NEUROMOD_CHROMIUM=/path/to/its/executable"; \
	fi

# Edits made in a notebook's py:percent twin (notebooks/*.py) reach the .ipynb first (jupytext
# --sync keeps the newer side's cells and the notebook's outputs); the run rewrites the twins.
notebooks: $(STAMP)
	$(PY) -m jupytext --sync --quiet notebooks/[0-9][0-9]_*.ipynb
	$(PY) -m neuromod_lib run all --in-place

twins: $(STAMP)
	$(PY) -m jupytext --sync --quiet notebooks/[0-9][0-9]_*.ipynb

test: $(STAMP) browser
	$(PY) -m pytest

test-slow: $(STAMP)
	$(PY) -m pytest -m slow

# Only the browser test (tests/test_browser.py): JupyterLab in headless Chromium, about 20 s.
test-browser: $(STAMP) browser
	$(PY) -m pytest -m browser tests/test_browser.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

list: $(STAMP)
	$(PY) -m neuromod_lib list

clean:
	rm -rf results/notebooks results/failed .pytest_cache
