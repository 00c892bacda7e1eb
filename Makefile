PY ?= python3
# The CPU wheel that DEVELOPERS.md names; an unpinned torch would pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0

.PHONY: install install-test test test-fast demo

install:
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e .

install-test:
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[test]"

# Two workers: the suite's tests each use one torch thread, and the machines here have two cores.
PYTEST_WORKERS ?= 2

test: install-test
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist worksteal

test-fast: install-test
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist worksteal -m "not slow"

demo: install
	$(PY) -m dualsr.demo --out demo_output
