# tinyconv — every command a user runs. `make test` sets itself up on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
ifdef VIRTUAL_ENV
PY := python
STAMP := $(VIRTUAL_ENV)/.tinyconv-installed
else
PY := $(VENV)/bin/python
STAMP := $(VENV)/.tinyconv-installed
endif
export PYTHONUNBUFFERED := 1

.PHONY: install test test-slow test-all bench cifar-resnet20 clean

install: $(STAMP)

$(STAMP): setup.py
	@if [ -z "$$VIRTUAL_ENV" ] && [ ! -x $(VENV)/bin/python ]; then $(PYTHON) -m venv $(VENV); fi
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

## The fast suite (CI): everything but long training runs and GPU-only tests.
test: install
	$(PY) -m pytest -m "not slow and not gpu"

## Long checks: real training runs.
test-slow: install
	$(PY) -m pytest -m "slow"

test-all: install
	$(PY) -m pytest

## Training-step and conv-layer timings (tinyconv vs PyTorch when installed).
bench: install
	$(PY) examples/bench.py

cifar-resnet20: install
	@echo "make cifar-resnet20: coming — the CIFAR-10 training pipeline is not in this build yet."

clean:
	rm -rf build dist *.egg-info .pytest_cache .hypothesis
