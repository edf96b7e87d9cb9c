# Two commands do all the set-up on a fresh machine:
#   make demo   - create .venv, install requirements.txt, and run the whole flow against a local Scalekit emulator
#   make test   - create .venv, install requirements-dev.txt too, lint, and run the test suite
# Any supported Python (3.11 or newer) works: make test PYTHON=python3.13 (or PYTHON=3.13), or a path.
# While developing, make check is the fast tier: ruff check and the tests that need no apt, npm or browser.
PYTHON ?= python3
VENV   ?= .venv
RUNS   ?= 10
BIN    := $(VENV)/bin

# PYTHON=3.13 or PYTHON=python3.13: that version. 3.13 is the interpreter scripts/pythons finds on
# this machine (pyenv, /usr/bin, PATH); python3.13 is the command of that name when it runs, else the
# same (under pyenv, python3.13 on PATH is a shim that fails unless 3.13 is an active version).
PYVER := $(shell echo '$(PYTHON)' | sed -nE 's/^(python)?([0-9]+\.[0-9]+)$$/\2/p')
ifneq ($(PYVER),)
FOUND = $(shell scripts/pythons | awk -v v='$(PYVER)' '$$1 == v {print $$2}')
ifeq ($(PYTHON),$(PYVER))
override PYTHON := $(or $(FOUND),python$(PYVER))
else
override PYTHON := $(or $(shell "$(PYTHON)" -c '' >/dev/null 2>&1 && echo '$(PYTHON)'),$(FOUND),$(PYTHON))
endif
endif

# Which interpreter exactly (version and real path): the environment is rebuilt when it changes.
PYID_CODE := import sys, os, hashlib; print("%d.%d-%s" % (sys.version_info[0], sys.version_info[1], hashlib.sha1(os.path.realpath(sys.executable).encode()).hexdigest()[:8]))
PYID   := $(shell "$(PYTHON)" -c '$(PYID_CODE)' 2>/dev/null)
# Two layers in one environment: what the skill needs (requirements.txt: all `make demo` installs)
# and the development tools on top (requirements-dev.txt: tests, lint, benchmarks).
RUNTIME := $(VENV)/.installed-$(or $(PYID),unknown)
STAMP  := $(VENV)/.installed-dev-$(or $(PYID),unknown)
HINT   := scripts/pythons lists the Pythons on this machine; pick one with e.g. make test PYTHON=3.12

.PHONY: demo check test lint bench stress system-deps tools clean

$(RUNTIME): requirements.txt
	@[ -n "$(PYID)" ] || { echo "make: cannot run Python '$(PYTHON)' (not installed, or a pyenv shim for a version that is not active). Install Python 3.11 or newer. $(HINT)" >&2; exit 3; }
	@"$(PYTHON)" -B -c "import scalekit_auth" || { echo "make: $(HINT)" >&2; exit 3; }
	@if [ -e "$(VENV)" ] && [ "$$("$(BIN)/python" -c '$(PYID_CODE)' 2>/dev/null)" != "$(PYID)" ]; then \
		echo "make: $(VENV) was made with another Python; recreating it with $(PYTHON)"; rm -rf "$(VENV)"; fi
	"$(PYTHON)" -m venv "$(VENV)"
	"$(BIN)/python" -m pip install --quiet --upgrade pip
	"$(BIN)/python" -m pip install --quiet -r requirements.txt
	touch "$(RUNTIME)"

$(STAMP): $(RUNTIME) requirements-dev.txt
	"$(BIN)/python" -m pip install --quiet -r requirements-dev.txt
	touch "$(STAMP)"

demo: $(RUNTIME)
	"$(BIN)/python" -m scalekit_auth demo

lint: $(STAMP)
	"$(BIN)/ruff" check .
	"$(BIN)/ruff" format --check .
	"$(BIN)/mypy"

system-deps:
	@scripts/system-deps

# The real OpenClaw CLI (and the Node 24 it needs) for tests/test_openclaw.py: fetched once into .tools/.
tools: system-deps
	@scripts/openclaw-cli >/dev/null

# The fast tier, for running every few minutes: only the venv (no apt packages, no npm, no browser).
# Skips the tests marked slow, browser, openclaw or system (pyproject.toml); make test runs them all.
check: $(STAMP)
	"$(BIN)/ruff" check .
	"$(BIN)/python" -m pytest -q -n auto -m "not slow and not browser and not openclaw and not system"

test: lint system-deps tools
	"$(BIN)/python" -m pytest -q -n auto

# The suite RUNS times in a row with a CPU hog on every core (see scripts/stress).
stress: $(STAMP) system-deps tools
	scripts/stress $(RUNS) "$(BIN)/python"

bench: $(STAMP)
	"$(BIN)/python" bench/bench_tokens.py
	"$(BIN)/python" bench/bench_cli.py
	"$(BIN)/python" bench/bench_shell.py
	"$(BIN)/python" bench/bench_async.py
	"$(BIN)/python" bench/bench_cache_memory.py
	"$(BIN)/python" bench/bench_request.py

clean:
	rm -rf "$(VENV)" .venv-* .pytest_cache .ruff_cache .mypy_cache .hypothesis test-artifacts .tools
