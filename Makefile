# Everything runs from a local virtualenv that the targets create on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
# medmnist is installed without its dependencies (they include PyTorch); the light
# packages its info/evaluator modules import are in requirements.txt.
MEDMNIST := medmnist==3.0.2

.PHONY: install test demo lint clean

$(VENV)/.installed: requirements.txt Makefile
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps $(MEDMNIST)
	touch $@

install: $(VENV)/.installed

test: install
	$(PY) -m pytest -q --durations=15

demo: install
	$(PY) main.py --config=configs/synthetic.py --workdir=runs/demo

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf runs .pytest_cache .ruff_cache
