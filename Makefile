# Verbs for the MNIST-on-Ray batch system. `make help` lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CONFIG ?= configs/quick.toml
OUT ?= runs
RAY_PORT ?= 6390
DASHBOARD_PORT ?= 8265
CLUSTER_DIR ?= .cluster

.PHONY: help install sweep train score images test check lint reference screenshots bench cluster-up cluster-down submit clean

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

# PYTHONWARNINGS: setuptools warns about every editable install in general terms.
$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	PYTHONWARNINGS=ignore $(PY) -m pip install -q -e '.[dev,tracking,bench]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install the project with its dev, tracking and bench tools

sweep: $(STAMP) ## Run the sweep in CONFIG (default configs/quick.toml: offline, digits)
	$(PY) -m jobs.sweep --config $(CONFIG) --out $(OUT)

train: $(STAMP) ## Train one trial of the tutorial model on the embedded digits data
	$(PY) -m jobs.train --dataset digits --epochs 30 --learning-rate 0.5 --out $(OUT)/train

images: $(STAMP) ## Write a demo image set (digits, 20,000 images) as Parquet shards
	$(PY) -m jobs.make_images --dataset digits --count 20000 --shard-size 5000 --out data/demo_images

score: $(STAMP) ## Score the demo image set with the latest sweep's best model (trains one if none)
	$(PY) -m jobs.score_demo --runs $(OUT) --out scores/demo

test: $(STAMP) ## Run the whole test suite (real TensorFlow, real Ray) on two workers
	$(PY) -m pytest -n 2 --dist loadscope

check: $(STAMP) ## The edit loop: lint, then the fast tests (no end-to-end cases), in about a minute
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -m "not slow" -x -n 2

lint: $(STAMP) ## Lint with ruff
	$(VENV)/bin/ruff check .

reference: $(STAMP) ## Regenerate docs/reference.md (every config key and job flag) from the code
	$(PY) -m jobs.reference

screenshots: $(STAMP) ## Regenerate docs/report.png and docs/scoring.png (headless Chromium)
	$(PY) docs/screenshots.py

bench: $(STAMP) ## Run the benchmarks under bench/ (prints ratios; see docs/benchmarks.md)
	$(PY) bench/pack.py
	$(PY) bench/sweep.py
	$(PY) bench/score.py
	$(PY) bench/reports.py
	$(PY) bench/page.py

cluster-up: $(STAMP) ## Start a two-node local Ray cluster on 127.0.0.1 (token auth)
	$(PY) -m cluster.local up --dir $(CLUSTER_DIR) --port $(RAY_PORT) --dashboard-port $(DASHBOARD_PORT)

cluster-down: $(STAMP) ## Stop the local cluster started by cluster-up (only its processes)
	$(PY) -m cluster.local down --dir $(CLUSTER_DIR)

submit: $(STAMP) ## Submit the sweep in CONFIG to the local cluster through Ray's Jobs API
	RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH=$(abspath $(CLUSTER_DIR))/auth_token \
		$(PY) -m jobs.submit sweep --config $(CONFIG) --out $(OUT) --no-progress \
		--address http://127.0.0.1:$(DASHBOARD_PORT)

clean: ## Remove runs/, scores/ and caches (keeps .venv)
	rm -rf runs scores .pytest_cache .ruff_cache
