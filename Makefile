# tokenadmin: developer and operator entry points.
#   make run     web (gunicorn) + workers (qcluster), production-shaped, SQLite by default
#   make demo    the same in demo mode: a built-in demo provider and a 15-minute grant to watch
#   make test    ruff check, ruff format --check, pytest   (PYTEST_ARGS='-k foo -x')
#   make bench   bench/run.py                               (BENCH_ARGS='...')
#   make lint    ruff check --fix;   make fmt  ruff format (+ import sorting)
#   make clean   caches and build output;   make distclean  also .venv (never .env or the database)
# Python: PYTHON (default python3.11, else python3) creates .venv; everything else runs inside it.
# .venv is (re)installed only when pyproject.toml changes: stamp files .venv/.installed-<hash>
# (runtime, also written by scripts/run.sh) and .venv/.installed-dev-<hash> (runtime + dev extra).

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
# `command -v` is not enough: a pyenv shim exists even when that version is not installed.
ifneq ($(shell $(PYTHON) -c 'import sys; print(sys.version_info >= (3, 11))' 2>/dev/null),True)
  override PYTHON := python3
endif

VENV := .venv
BIN := $(VENV)/bin
PYPROJECT_HASH := $(shell $(PYTHON) -c 'import hashlib; print(hashlib.sha256(open("pyproject.toml", "rb").read()).hexdigest()[:16])')
RUN_STAMP := $(VENV)/.installed-$(PYPROJECT_HASH)
DEV_STAMP := $(VENV)/.installed-dev-$(PYPROJECT_HASH)
PIP_INSTALL := $(BIN)/python -m pip install --quiet --disable-pip-version-check

PYTEST_ARGS ?=
BENCH_ARGS ?=
# Set ALLOW_NO_TESTS=1 to accept pytest's exit code 5 ("no tests collected") as success.
ALLOW_NO_TESTS ?=
# Exported only so the test recipe can echo the arguments exactly as given.
export PYTEST_ARGS

.PHONY: help run demo test bench lint fmt clean distclean venv

help:
	@sed -n '2,7s/^# \{0,1\}//p' Makefile

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Runtime + dev extra. A dev install is also a full runtime install, so it writes both stamps.
$(DEV_STAMP): | $(BIN)/python
	$(PIP_INSTALL) -e '.[dev]'
	find $(VENV) -maxdepth 1 -name '.installed-*' -delete
	touch $(DEV_STAMP) $(RUN_STAMP)

venv: $(DEV_STAMP)

run:
	PYTHON=$(PYTHON) bash scripts/run.sh

demo:
	TOKENADMIN_DEMO=1 PYTHON=$(PYTHON) bash scripts/run.sh

test: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@echo "$(BIN)/pytest $$PYTEST_ARGS"; \
	rc=0; $(BIN)/pytest $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ] && [ -n "$(ALLOW_NO_TESTS)" ]; then \
	  echo "make test: pytest collected no tests (exit 5); accepted because ALLOW_NO_TESTS is set"; \
	  rc=0; \
	fi; \
	exit $$rc

# The token API bench needs the wrk load generator (a system package); fetched here where apt can.
bench: $(DEV_STAMP)
	@command -v wrk >/dev/null 2>&1 || { \
	  echo "make bench: installing wrk (the token API bench's load generator) with apt-get"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get install -y -qq wrk; else sudo -n apt-get install -y -qq wrk; fi \
	    || echo "make bench: could not install wrk; the token API bench will say how"; \
	}
	$(BIN)/python bench/run.py $(BENCH_ARGS)

lint: $(DEV_STAMP)
	$(BIN)/ruff check --fix .

fmt: $(DEV_STAMP)
	$(BIN)/ruff check --select I --fix .
	$(BIN)/ruff format .

clean:
	rm -rf staticfiles .pytest_cache .ruff_cache build dist *.egg-info
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
