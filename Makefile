# Everything runs from a local virtualenv that the targets create on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
# medmnist is installed without its dependencies (they include PyTorch); the light
# packages its info/evaluator modules import are in requirements.txt.
MEDMNIST := medmnist==3.0.2
# jax's CUDA 12 wheels at the version requirements.txt pins (`make gpu-check`).
JAX_VERSION := $(shell sed -n 's/^jax==//p' requirements.txt)
GPU_CHECK_FLAGS ?=
# Test worker processes (pytest-xdist); 0 runs the suite in this process. Each test
# file runs on one worker (its module fixtures once), in the order of tests/conftest.py.
TEST_WORKERS ?= 2

.PHONY: install test demo lint clean gpu-check

$(VENV)/.installed: requirements.txt Makefile
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps $(MEDMNIST)
	touch $@

install: $(VENV)/.installed

test: install
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder --durations=15

demo: install
	$(PY) main.py --config=configs/synthetic.py --workdir=runs/demo

# Device, tests, benchmark and a short AdrenalMNIST3D training on the accelerator,
# figures in one JSON (benchmarks/gpu_check.py; a reduced check without a GPU).
gpu-check: install
	$(PY) -m pip install -q "jax[cuda12]==$(JAX_VERSION)" || \
		echo "jax[cuda12]==$(JAX_VERSION) not installed (offline?): checking what is installed"
	$(PY) benchmarks/gpu_check.py $(GPU_CHECK_FLAGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf runs .pytest_cache .ruff_cache
