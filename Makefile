# nasx: `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
export WANDB_SILENT ?= true

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP) ## create .venv and install nasx with its dev tools (once)

run: $(STAMP) ## the main job on the embedded default (digits, NB201, NSGA-II over flatness and FLOPs)
	$(PY) run.py $(ARGS)

smoke: $(STAMP) ## every stage with tiny settings (< 1 minute)
	WANDB_MODE=$${WANDB_MODE:-disabled} $(PY) run.py experiment=smoke $(ARGS)

test: $(STAMP) ## the default test suite (no slow or GPU tests)
	WANDB_MODE=disabled $(PY) -m pytest -m "not slow and not gpu" -q

test-all: $(STAMP) ## every test, including slow end-to-end runs on CIFAR-10
	WANDB_MODE=disabled $(PY) -m pytest -q

lint: $(STAMP) ## ruff lint and format check
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: $(STAMP) ## ruff format and autofix
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

typecheck: $(STAMP) ## mypy on the package
	$(VENV)/bin/mypy

bench: $(STAMP) ## run the benchmarks (about 2.5 h on 2 cores) and rewrite their sections of benchmarks/RESULTS.md
	WANDB_MODE=disabled $(PY) benchmarks/supernet_throughput.py --write-results
	WANDB_MODE=disabled $(PY) benchmarks/retrain_throughput.py --write-results
	WANDB_MODE=disabled $(PY) benchmarks/flatness_cost.py --write-results
	WANDB_MODE=disabled $(PY) benchmarks/search_strategies.py --write-results
	WANDB_MODE=disabled $(PY) benchmarks/nag_generator.py --write-results
	WANDB_MODE=disabled $(PY) benchmarks/lut_fidelity.py --write-results
	WANDB_MODE=disabled $(PY) benchmarks/surrogate_cost.py --write-results
	WANDB_MODE=disabled $(PY) benchmarks/ofa_supernet.py --write-results
	WANDB_MODE=disabled $(PY) benchmarks/corruption_cost.py --write-results
	WANDB_MODE=disabled $(PY) benchmarks/early_exit_latency.py --write-results
	WANDB_MODE=disabled $(PY) benchmarks/ray_scaling.py --write-results

bench-ranking: $(STAMP) ## the ranking-quality benchmark (trains two supernets: hours on 2 cores)
	WANDB_MODE=disabled $(PY) benchmarks/ranking_quality.py --write-results

clean: ## remove caches and run outputs (outputs/, multirun/, wandb/)
	rm -rf outputs multirun wandb lightning_logs .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

.PHONY: help install run smoke test test-all lint format typecheck bench bench-ranking clean
