# One-command set-up: `make demo` (install + partition + train on 2 local processes), `make test`.
# TORCH_SPEC is overridable; a user gets the newest build in the tested range (CI runs both ends).
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch>=2.13,<3
EXTRAS ?= dev,kaminpar
BIN := $(VENV)/bin

BASELINES ?= .venv-baselines
.PHONY: install demo test lint baselines clean

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

# `make test`: lint and the whole suite. Files holding a `slow` (minutes-long) test are handed out first
# (tests/conftest.py; --no-loadscope-reorder keeps that order instead of xdist's most-tests-first), so
# they run side by side from the start instead of ending the run on one worker. `-m "not slow"` is a
# quicker subset while developing.
#
# The suite runs the best C++ entry point this CPU has; the C++ kernels' tests then run once more per
# other entry point it can run (DISTGNN_CPU_ISA forces it: avx2 and baseline on an AVX-512 machine).
ISA_TESTS = $(addprefix tests/kernels/,test_gspmm.py test_attention_ops.py test_dropout.py \
  test_eager_path.py test_saved_tensors.py test_api.py test_index_width.py)

test: install
	$(BIN)/ruff check .
	$(BIN)/hadolint docker/Dockerfile.cpu docker/Dockerfile.cuda
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=25
	for isa in $$($(BIN)/python -c "from distgnn.kernels import isa; print(*isa.supported()[1:])"); do \
	  echo "C++ kernel tests on the forced $$isa entry point"; \
	  DISTGNN_CPU_ISA=$$isa $(BIN)/python -m pytest -q -p no:cacheprovider -n 0 -k "not triton" $(ISA_TESTS) || exit 1; \
	done

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/test_layering.py  # import-linter's contracts
	$(BIN)/hadolint docker/Dockerfile.cpu docker/Dockerfile.cuda

# DGL/PyG for the side-by-side benchmarks, in their own venv (DGL 2.1 wheels need torch <= 2.2).
# Checked: `make baselines` then `.venv-baselines/bin/python -c "from dgl.nn import GraphConv"`.
baselines:
	$(PYTHON) -m venv $(BASELINES)
	$(BASELINES)/bin/pip install -q torch==2.2.1 dgl==2.1.0 torch_geometric==2.8.1 "numpy<2" \
	  torchdata==0.7.1 "pandas<2.3" pydantic pyyaml  # what DGL 2.1 imports (torchdata >= 0.8 dropped datapipes)

clean:
	rm -rf $(VENV) runs .pytest_cache
