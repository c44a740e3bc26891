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

.PHONY: install test test-slow test-all test-gpu bench cifar-resnet20 cifar-plain-vs-resnet clean

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

## On a machine with a CUDA GPU: installs CuPy, then runs the GPU tests and the CUDA kernel checks.
test-gpu: install
	$(PY) -m pip install -q -e '.[cuda]'
	$(PY) -m pytest -m gpu -rs tests/test_gpu.py
	$(PY) -m pytest tests/test_cuda_kernels.py tests/test_cuda_compile.py tests/test_cuda_emulator.py

## Training-step and conv-layer timings (tinyconv vs PyTorch when installed).
bench: install
	$(PY) examples/bench.py

## CIFAR-10 (data: DATA, default $TINYCONV_DATA; see python -m tinyconv.train --help).
## ResNet-20 with the paper's recipe (64k iterations, lr/10 at 32k and 48k); EPOCHS=N shortens it
## (lr drops at 50% and 75%), RESUME=1 continues the run in OUT after a stop.
DATA ?= $(TINYCONV_DATA)
cifar-resnet20: OUT ?= runs/resnet20
cifar-resnet20: install
	$(PY) -m tinyconv.train --model resnet20 --out $(OUT) \
		$(if $(EPOCHS),--epochs $(EPOCHS)) $(if $(DATA),--data $(DATA)) $(if $(RESUME),--resume)

## The degradation experiment of the paper's Figure 6 on a budget: plain-20, plain-56, ResNet-20 and
## ResNet-56 with the same short schedule (EPOCHS, default 6; SUBSET=N trains on the first N images
## only), then one plot of their error curves, OUT/plain_vs_resnet.png. Rerunning continues
## unfinished runs and skips finished ones.
PVR_MODELS := plain20 plain56 resnet20 resnet56
cifar-plain-vs-resnet: OUT ?= runs/plain-vs-resnet
cifar-plain-vs-resnet: EPOCHS ?= 6
cifar-plain-vs-resnet: install
	@set -e; for m in $(PVR_MODELS); do \
		if [ -f $(OUT)/$$m/checkpoint.npz ]; then resume=--resume; else resume=; fi; \
		$(PY) -m tinyconv.train --model $$m --epochs $(EPOCHS) --out $(OUT)/$$m $$resume \
			$(if $(SUBSET),--subset $(SUBSET)) $(if $(DATA),--data $(DATA)); \
	done
	$(PY) examples/plain_vs_resnet.py $(OUT) --out $(OUT)/plain_vs_resnet.png

clean:
	rm -rf build dist *.egg-info .pytest_cache .hypothesis

## The lecture's fancier architectures (multi-task, DAG, recurrent CNN, two-stream, siamese,
## multi-scale, DeViSE), each example with --quick (< 1 minute each, on real CIFAR-10 from DATA);
## results in OUT/<example>/. Without --quick, `python examples/<name>.py` is the real run.
LECTURE_EXAMPLES := multitask dag recurrent_cnn two_stream siamese multiscale devise
.PHONY: examples-quick
examples-quick: OUT ?= runs/quick
examples-quick: install
	@set -e; for e in $(LECTURE_EXAMPLES); do \
		echo "== examples/$$e.py --quick"; \
		$(PY) examples/$$e.py --quick --out $(OUT)/$$e $(if $(DATA),--data $(DATA)); \
	done
