# SBIF: set-up, demo and tests. Every target installs what it needs and is idempotent.
SHELL := /bin/bash
PYTHON ?= python3
PYENV_ROOT ?= $(shell pyenv root 2>/dev/null || echo $$HOME/.pyenv)
PY37 ?= $(PYENV_ROOT)/versions/3.7.16/bin/python3.7
VENV := .venv
VENV_SB2 := .venv-sb2
export OMPI_ALLOW_RUN_AS_ROOT := 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM := 1
export TF_CPP_MIN_LOG_LEVEL := 3
export PYTHONHASHSEED := 0

.PHONY: all envs modern legacy demo test test-modern test-legacy bench clean

all: envs

envs: modern legacy

# --- system packages (mpi4py needs an MPI implementation with headers) ---------------------------
.stamps/apt:
	@mkdir -p .stamps
	@if ! dpkg -s libopenmpi-dev >/dev/null 2>&1; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenmpi-dev openmpi-bin >/dev/null; \
	fi
	@touch $@

# --- modern environment --------------------------------------------------------------------------
$(VENV)/.done: pyproject.toml requirements/modern.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements/modern.txt
	$(VENV)/bin/pip install -q --no-deps -e .
	@touch $@
modern: $(VENV)/.done

# --- legacy SB2 environment (Python 3.7, TensorFlow 1.15) -----------------------------------------
$(PY37):
	pyenv install -s 3.7.16

$(VENV_SB2)/.done: pyproject.toml requirements/legacy.txt .stamps/apt | $(PY37)
	$(PY37) -m venv $(VENV_SB2)
	$(VENV_SB2)/bin/pip install -q --upgrade "pip<24"
	$(VENV_SB2)/bin/pip install -q -r requirements/legacy.txt
	$(VENV_SB2)/bin/pip install -q --no-deps -e .
	@touch $@
legacy: $(VENV_SB2)/.done
