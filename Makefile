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
DEMO_DATA   ?= data/demo
DEMO_OUT    ?= outputs/demo
DEMO_CASES  ?= 60
# Lateral views prepared for the demo's angle-randomized training (60-120 degrees) and its evaluation at 90 and 75.
DEMO_ANGLES ?= [60,65,70,75,80,85,90,95,100,105,110,115,120]
# On a machine with an NVIDIA GPU the demo trains there; extra x2ct-train overrides go in DEMO_TRAIN_ARGS.
DEMO_TRAINER ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo gpu || echo cpu)
DEMO_TRAIN_ARGS ?=

.PHONY: install demo test test-full lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)" -e ".[dev]" $(PIP_ARGS)
	touch $(STAMP)

install: $(STAMP)

# The whole pipeline on phantoms, offline: 64^3 cases at 2 mm (the paper's 128 mm field of view) with lateral views at
# 60-120 degrees, training of the `demo` experiment (the geometry-aware ray-implicit model on random lateral angles)
# with CSV + offline W&B logging, and a report at 90 and 75 degrees against the mean-volume baseline and the paper model.
demo: $(STAMP)
	$(BIN)/x2ct-prepare source=phantom source.n_cases=$(DEMO_CASES) out_dir=$(DEMO_DATA) \
		volume.cube=64 'volume.spacing_mm=[2.0,2.0,2.0]' 'lateral_angles=$(DEMO_ANGLES)' n_previews=2
	rm -rf $(DEMO_OUT)
	WANDB_MODE=$${WANDB_MODE:-offline} $(BIN)/x2ct-train experiment=demo data.root=$(DEMO_DATA) \
		trainer=$(DEMO_TRAINER) logger=many_loggers hydra.run.dir=$(DEMO_OUT)/train $(DEMO_TRAIN_ARGS)
	$(BIN)/python -m x2ct.demo_report --run-dir $(DEMO_OUT)/train --out $(DEMO_OUT)/report

# OMP_WAIT_POLICY=PASSIVE: torch threads do not spin while the other test worker uses the cores.
test: $(STAMP)
	WANDB_MODE=disabled OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m pytest -m "not full" -n 2 $(PYTEST_ARGS)

test-full: $(STAMP)
	WANDB_MODE=disabled OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check x2ct tests benchmarks
	$(BIN)/ruff format --check x2ct tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_drr.py
	$(BIN)/python benchmarks/bench_prepare.py
	$(BIN)/python benchmarks/bench_train.py

clean:
	rm -rf .pytest_cache .ruff_cache .bench outputs multirun
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
