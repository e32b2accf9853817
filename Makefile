# SBIF: set-up, demo and tests. Every target installs what it needs, is idempotent, and is fast when re-run.
#   make demo    export the shipped PPO2 CartPole model and an SB3 PPO it trains, run them in gymnasium with NumPy
#   make test    create both environments and run the whole suite (modern env, then the SB2 env)
#   make check   the fast inner loop, about 2 minutes: the modern env's tests minus the slow ones (pytest -m "not slow")
#   make bench   the speed benchmarks of issues #7, #22 and #23 (benchmarks/README.md)
#   make fuzz    the readers' coverage-guided fuzzers, FUZZ_SECONDS each (tests/fuzz/README.md; not part of make test)
#   make newest-numba  the numba backend built and checked with the newest numba on PyPI (sbif/runtime/numba/PYCC.md)
#   make browser the browser tests' Chromium (Debian's, apt) and playwright-core (npm); make test and make check do it
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
PYENV_ROOT ?= $(shell pyenv root 2>/dev/null || echo $$HOME/.pyenv)
PY37 ?= $(PYENV_ROOT)/versions/3.7.16/bin/python3.7
VENV := .venv
VENV_SB2 := .venv-sb2
OUT := out
export OMPI_ALLOW_RUN_AS_ROOT := 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM := 1
export TF_CPP_MIN_LOG_LEVEL := 3
export PIP_DISABLE_PIP_VERSION_CHECK := 1
PIP_QUIET := --quiet --no-warn-script-location

.PHONY: all envs modern legacy browser demo test test-modern test-legacy check runtime-c numba-kernels bench fuzz \
	newest-numba newest-numba-advisory clean

all: envs
envs: modern legacy

# --- system packages: mpi4py (imported by SB2's DDPG/TRPO/PPO1/GAIL) needs MPI with headers ---------------
.stamps/apt:
	@mkdir -p .stamps
	@if ! dpkg -s libopenmpi-dev >/dev/null 2>&1; then \
	  echo "installing libopenmpi-dev (apt)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenmpi-dev openmpi-bin >/dev/null; \
	fi
	@touch $@

# --- the browser tests (tests/browser): Debian's Chromium, driven by playwright-core (pinned by tests/browser's
# lockfile; it never downloads a browser). Once per machine: apt 32 s, npm ci 1 s on this host --------------------
BROWSER_TESTS := tests/browser
.stamps/chromium:
	@mkdir -p .stamps
	@if [ ! -x /usr/bin/chromium ]; then \
	  echo "installing chromium (apt)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi
	@touch $@

# npm ci rewrites node_modules/.package-lock.json: the stamp of an install matching the lockfile
$(BROWSER_TESTS)/node_modules/.package-lock.json: $(BROWSER_TESTS)/package-lock.json
	cd $(BROWSER_TESTS) && npm ci --no-audit --no-fund
browser: .stamps/chromium $(BROWSER_TESTS)/node_modules/.package-lock.json

# --- modern environment (python3, current numpy) ---------------------------------------------------------
# sbif is installed as a plain path entry (setuptools' "compat" editable mode, while it exists), not the import-hook
# finder that costs every process of the venv 25 ms of start-up (pathlib, importlib.util...) that an installed sbif
# does not
$(VENV)/.done: pyproject.toml requirements/modern.txt
	@echo "creating $(VENV) (modern environment)"
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_QUIET) -r requirements/modern.txt 2>&1 | sed "/^WARNING: Location/d"
	$(VENV)/bin/pip install $(PIP_QUIET) --no-deps -e . --config-settings editable_mode=compat 2>/dev/null \
	  || $(VENV)/bin/pip install $(PIP_QUIET) --no-deps -e . 2>&1 | sed "/^WARNING: Location/d"
	$(VENV)/bin/python -c "import sbif, numba, hypothesis, gymnasium, stable_baselines3, sb3_contrib"
	@touch $@
modern: $(VENV)/.done

# --- legacy SB2 environment (Python 3.7, TensorFlow 1.15, the source of truth) ---------------------------
$(PY37):
	pyenv install -s 3.7.16

$(VENV_SB2)/.done: pyproject.toml requirements/legacy.txt .stamps/apt | $(PY37)
	@echo "creating $(VENV_SB2) (Python 3.7 + TensorFlow 1.15 + Stable-Baselines 2.10.2)"
	$(PY37) -m venv $(VENV_SB2)
	$(VENV_SB2)/bin/pip install $(PIP_QUIET) --upgrade "pip<24" 2>&1 | sed "/^WARNING: Location/d"
	$(VENV_SB2)/bin/pip install $(PIP_QUIET) -r requirements/legacy.txt 2>&1 | sed "/^WARNING: Location/d"
	$(VENV_SB2)/bin/pip install $(PIP_QUIET) --no-deps -e . 2>&1 | sed "/^WARNING: Location/d"
	$(VENV_SB2)/bin/python -c "import sbif, stable_baselines, tensorflow, mpi4py" 2>/dev/null
	@touch $@
legacy: $(VENV_SB2)/.done

# --- demo ------------------------------------------------------------------------------------------------
demo: envs
	@mkdir -p $(OUT)
	@echo "== 1. export the shipped SB2 model: read as data (safe loader, no SB2 needed), then again with SB2 itself (live loader, verified against SB2's predictions)"
	$(VENV)/bin/sbif export demo/ppo2_cartpole.zip -o $(OUT)/ppo2_cartpole.safe.sbif
	$(VENV_SB2)/bin/sbif export demo/ppo2_cartpole.zip --loader live -o $(OUT)/ppo2_cartpole.sbif
	@echo "== 2. run it with the NumPy runtime in gymnasium CartPole-v1 (modern environment, no SB2)"
	$(VENV)/bin/sbif inspect $(OUT)/ppo2_cartpole.sbif | head -8
	$(VENV)/bin/python demo/run_cartpole.py $(OUT)/ppo2_cartpole.sbif --episodes 20 --record $(OUT)/cartpole_obs.npy
	@echo "== 3. compare with SB2's own predictions on every observation of those episodes"
	$(VENV_SB2)/bin/python demo/compare_with_sb2.py demo/ppo2_cartpole.zip $(OUT)/ppo2_cartpole.sbif $(OUT)/cartpole_obs.npy
	@echo "== 4. the same for Stable-Baselines3: a PPO the demo trains itself (about a minute, once), exported as data (safe loader, no torch) and by SB3 itself (live loader, verified against SB3's predictions), run with the NumPy runtime"
	$(MAKE) --no-print-directory $(OUT)/ppo_cartpole_sb3.zip
	$(VENV)/bin/sbif export $(OUT)/ppo_cartpole_sb3.zip -o $(OUT)/ppo_cartpole_sb3.safe.sbif
	$(VENV)/bin/sbif export $(OUT)/ppo_cartpole_sb3.zip --loader live -o $(OUT)/ppo_cartpole_sb3.sbif
	$(VENV)/bin/python demo/run_cartpole.py $(OUT)/ppo_cartpole_sb3.sbif --episodes 20 --min-return 150

$(OUT)/ppo_cartpole_sb3.zip: demo/train_sb3_cartpole.py
	$(VENV)/bin/python demo/train_sb3_cartpole.py $@

# --- tests -----------------------------------------------------------------------------------------------
# The modern suite, then the SB2 one with the newest numba's check (`make newest-numba`, below: pip, then two builds
# on one core) beside it rather than after it: the SB2 suite's workers leave a core idle while they wait on TensorFlow
# or on a worker still running its last tests.
test: test-modern
	@$(MAKE) --no-print-directory -j2 test-legacy newest-numba-advisory

# as newest-numba, where a failure is a warning (make test)
newest-numba-advisory:
	@.ci/newest-numba || echo "WARNING: the numba backend does not build, or does not agree with the NumPy reference, with the newest numba release (the line above says what failed; sbif/runtime/numba/PYCC.md says what to do); make test does not fail for it"

# numba.pycc is pending deprecation (sbif/runtime/numba/PYCC.md): does the numba backend still build, and agree with
# the NumPy reference, with the newest numba, llvmlite and numpy releases? Its own venv in ~/.cache/sbif-newest-numba.
newest-numba:
	.ci/newest-numba

# the C runtime (runtimes/c), built before the suites that run it (plain and under ASan/UBSan)
runtime-c:
	$(MAKE) -C runtimes/c

# the numba backend's compiled kernels (sbif/runtime/numba/aot.py), built into the clone (not ~/.cache/sbif: every
# run of the suites tests the build): one to two minutes of one core after the kernels change, a moment otherwise.
# The modern suites build them beside the C runtime, before pytest, rather than in both pytest-xdist workers at once,
# each when it first needs them. A failed build says why on stderr and does not stop the suite: where numba's pycc
# cannot build them, the backend falls back to its JIT
KERNEL_CACHE := $(CURDIR)/.cache/sbif
numba-kernels: export SBIF_CACHE_DIR := $(KERNEL_CACHE)
numba-kernels: modern
	-$(VENV)/bin/python -m sbif.runtime.numba.aot --json > /dev/null

# The suites run on the machine's 2 cores (pytest-xdist). --dist loadgroup keeps the tests of a costly shared fixture
# (the Ray cluster, the wheel, Chromium's bridge) on one worker, which sets it up once (tests/conftest.py).
XDIST := -n 2 --dist loadgroup

test-modern: export SBIF_CACHE_DIR := $(KERNEL_CACHE)
test-modern: modern
	@$(MAKE) --no-print-directory -j2 runtime-c browser numba-kernels
	@echo "== tests in the modern environment ($$($(VENV)/bin/python --version), numpy $$($(VENV)/bin/python -c 'import numpy; print(numpy.__version__)'))"
	$(VENV)/bin/python -m pytest -q $(XDIST) tests

# The SB2 environment reruns the core (format, safe loader, reference runtime, CLI) under Python 3.7 and numpy 1.18,
# and runs the live differential tests against SB2 itself. What checks the same thing under any Python runs once, in
# the modern environment: the wheel tests (tests/test_wheel.py), the JavaScript runtime and pages (marked javascript:
# Node and Chromium), and the other tests of code that is not Python (marked python_independent: the C runtime's
# builds and sanitizers, the differential fuzzing of the C and Node readers; tests/conftest.py lists them)
test-legacy: legacy runtime-c
	@echo "== tests in the SB2 environment (Python 3.7, numpy 1.18, live differential tests)"
	SBIF_REQUIRE_SB2=1 $(VENV_SB2)/bin/python -m pytest -q $(XDIST) \
	  -m "not wheel and not javascript and not python_independent" tests

# the fast inner loop, about 2 minutes on 2 cores: what `make test-modern` runs, minus the tests marked slow (the
# core stays: format, NumPy runtime, CLI, safe loader, and each converter's and runtime's own small tests; the sweeps
# leave: golden packs and families through other runtimes, fuzz runs, corpora, memory budgets, the wheel and the
# new user's path; tests/conftest.py says which and why); the live tests need the SB2 environment and are not
# collected here. After a change to the numba kernels, the first run also rebuilds them (one to two minutes, shared
# with make test).
check: export SBIF_CACHE_DIR := $(KERNEL_CACHE)
check: modern
	@$(MAKE) --no-print-directory -j2 runtime-c browser numba-kernels
	$(VENV)/bin/python -m pytest -q $(XDIST) -m "not slow" tests

# --- benchmarks (not part of the tests): SB2 vs SBIF numpy/numba/C, onnxruntime, torch; then the JavaScript runtime vs
# onnxruntime-web (WASM) in Node (benchmarks/js, onnxruntime-web pinned by its lockfile); writes benchmarks/results/
BENCH_JS := benchmarks/js
$(BENCH_JS)/node_modules/.package-lock.json: $(BENCH_JS)/package-lock.json
	cd $(BENCH_JS) && npm ci --no-audit --no-fund
bench: envs $(BENCH_JS)/node_modules/.package-lock.json
	$(VENV)/bin/python benchmarks/run.py
	$(VENV)/bin/python benchmarks/js_bench.py

# --- fuzzing (not part of the tests): libFuzzer on the C reader, then atheris on the Python reader against the C one,
# FUZZ_SECONDS each, one process at a time; working corpora and findings in .cache/fuzz (tests/fuzz/README.md) ----
FUZZ_SECONDS ?= 300
fuzz: modern
	@if ! command -v clang >/dev/null || ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a \
	    >/dev/null 2>&1; then \
	  echo "installing clang and libclang-rt-14-dev (apt: libFuzzer)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang libclang-rt-14-dev >/dev/null; \
	fi
	@$(VENV)/bin/python -c "import atheris" 2>/dev/null || $(VENV)/bin/pip install $(PIP_QUIET) atheris==3.0.0
	$(MAKE) -C runtimes/c fuzz shared
	FUZZ_SECONDS=$(FUZZ_SECONDS) PYTHON=$(VENV)/bin/python tests/fuzz/run_fuzzers.sh

clean:
	rm -rf $(VENV) $(VENV_SB2) .stamps $(OUT) .cache benchmarks/.work $(BROWSER_TESTS)/node_modules $(BENCH_JS)/node_modules
