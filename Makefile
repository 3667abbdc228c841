# `make run` runs the pipeline, `make test` runs all the tests (and installs, as root, the
# system packages they need), `make check` the fast tier in minutes; all set up .venv first.
# Another interpreter: `PYTHON=python3.12 make run` (remove .venv when switching).
PYTHON ?= python3.11
VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: run test check lint lock

$(VENV)/installed: pyproject.toml requirements.lock
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $@

# With a DVC remote (README, "Team set-up"), what was pushed is pulled instead of re-made.
run: $(VENV)/installed
	if dvc remote default >/dev/null 2>&1; then dvc repro --pull; else dvc repro; fi

test: $(VENV)/installed
	PYTHON=$(VENV)/bin/python bash tests/system-packages.sh
	pytest

# No training beyond seconds, no services: what to run before each commit.
check: $(VENV)/installed
	PYTHON=$(VENV)/bin/python bash tests/system-packages.sh
	pytest -m "not slow"

lint: $(VENV)/installed
	ruff check . && ruff format --check .

# Re-pin requirements.lock to what is installed now (after the tests pass).
lock:
	$(VENV)/bin/python -m pip freeze --exclude-editable > requirements.lock
