# Two commands do all the set-up on a fresh machine:
#   make demo   - create .venv, install, and run the whole flow against a local Scalekit emulator
#   make test   - create .venv, install, lint, and run the test suite
# Any supported Python (3.11 or newer) works: PYTHON=python3.13 make test
# (scripts/pythons lists the Pythons on this machine).
PYTHON ?= python3
VENV   ?= .venv
RUNS   ?= 10
BIN    := $(VENV)/bin
PYVER  := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
# One stamp per Python version: switching PYTHON rebuilds the environment.
STAMP  := $(VENV)/.installed-$(PYVER)

.PHONY: demo test lint bench stress system-deps clean

$(STAMP): requirements.txt requirements-dev.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "make: Python '$(PYTHON)' was not found. Install Python 3.11 or newer, or name one: make test PYTHON=python3.12 (scripts/pythons lists those on this machine)." >&2; exit 3; }
	@$(PYTHON) -B -c "import scalekit_auth" || { echo "make: choose another interpreter, e.g. make test PYTHON=python3.12 (scripts/pythons lists those on this machine)." >&2; exit 3; }
	@if [ -x $(BIN)/python ] && [ "$$($(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" != "$(PYVER)" ]; then \
		echo "make: $(VENV) was made with another Python; recreating it with $(PYTHON) ($(PYVER))"; rm -rf $(VENV); fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m scalekit_auth demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

system-deps:
	@scripts/system-deps

test: lint system-deps
	$(BIN)/python -m pytest -q -n auto

# The suite RUNS times in a row with a CPU hog on every core (see scripts/stress).
stress: $(STAMP) system-deps
	scripts/stress $(RUNS) $(BIN)/python

bench: $(STAMP)
	$(BIN)/python bench/bench_tokens.py
	$(BIN)/python bench/bench_cli.py

clean:
	rm -rf $(VENV) .venv-* .pytest_cache .ruff_cache .hypothesis test-artifacts
