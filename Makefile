# x2ct make targets. Every target installs what it needs into $(VENV) on first use.
# GPU users: override TORCH_SPEC (e.g. make install TORCH_SPEC="torch==2.13.0" PIP_ARGS="--index-url ...").
PYTHON      ?= python3
VENV        ?= .venv
TORCH_VERSION ?= 2.13.0
TORCH_SPEC  ?= torch==$(TORCH_VERSION)
PIP_ARGS    ?=
PYTEST_ARGS ?=
BIN         := $(VENV)/bin
STAMP       := $(VENV)/.x2ct-installed
DEMO_DIR    ?= data/phantoms

.PHONY: install demo test test-full lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)" -e ".[dev]" $(PIP_ARGS)
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	WANDB_MODE=$${WANDB_MODE:-offline} $(BIN)/x2ct-prepare source=phantom source.n_cases=16 out_dir=$(DEMO_DIR)

test: $(STAMP)
	WANDB_MODE=disabled $(BIN)/python -m pytest -m "not full" -n 2 $(PYTEST_ARGS)

test-full: $(STAMP)
	WANDB_MODE=disabled $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check x2ct tests benchmarks
	$(BIN)/ruff format --check x2ct tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_drr.py
	$(BIN)/python benchmarks/bench_prepare.py

clean:
	rm -rf .pytest_cache .ruff_cache .bench outputs multirun
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
