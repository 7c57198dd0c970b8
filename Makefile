# One-command set-up: `make demo` (install + partition + train on 2 local processes), `make test`.
# TORCH_SPEC is overridable: CI pins the CPU wheel (torch==2.13.0); a user gets the normal build.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch>=2.4,<3
EXTRAS ?= dev,kaminpar
BIN := $(VENV)/bin

BASELINES ?= .venv-baselines
.PHONY: install demo test test-slow lint baselines clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -qq -e ".[$(EXTRAS)]"  # -qq: no setuptools notes about editable installs
	$(BIN)/python -m distgnn.kernels.build  # compile the C++ kernels now, not in the first epoch

demo: install
	$(BIN)/distgnn partition --dataset synthetic --parts 2 --out runs/demo-parts --force
	$(BIN)/distgnn train --partitions runs/demo-parts --model gcn --epochs 50 --nproc 2 --metrics-out runs/demo-metrics.jsonl

# The suite runs on TEST_WORKERS pytest-xdist workers, one test file per worker at a time (module fixtures
# such as a process group's runs are built once). Multi-process tests spend much of their time waiting
# (spawn, rendezvous, timeouts), so 3 workers on 2 cores finish sooner than 2.
TEST_WORKERS ?= 3

# `make test`: lint and every test not marked slow. `make test-slow`: the slow tier (10-seed accuracy, Ray,
# hybrid restart, hung-peer and two-agent failure tests, the GPU check script's CPU run). CI runs both.
test: install
	$(BIN)/ruff check .
	$(BIN)/hadolint docker/Dockerfile.cpu docker/Dockerfile.cuda
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not slow" --durations=25

test-slow: install
	$(BIN)/python -m pytest -q -n 2 --dist load -m slow --durations=10

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
	$(BIN)/hadolint docker/Dockerfile.cpu docker/Dockerfile.cuda

# DGL/PyG for the side-by-side benchmarks, in their own venv (DGL 2.1 wheels need torch <= 2.2).
# Checked: `make baselines` then `.venv-baselines/bin/python -c "from dgl.nn import GraphConv"`.
baselines:
	$(PYTHON) -m venv $(BASELINES)
	$(BASELINES)/bin/pip install -q torch==2.2.1 dgl==2.1.0 torch_geometric==2.8.1 "numpy<2" \
	  torchdata==0.7.1 "pandas<2.3" pydantic pyyaml  # what DGL 2.1 imports (torchdata >= 0.8 dropped datapipes)

clean:
	rm -rf $(VENV) runs .pytest_cache
