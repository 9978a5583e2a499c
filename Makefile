# linkage: `make help` lists the targets. Everything runs in ./.venv, created by `make setup`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# Harmless and no longer needed: the session factory points Spark's Python workers at the
# driver's interpreter however a job is started (linkage/session.py use_worker_python).
export PYSPARK_PYTHON := $(CURDIR)/$(PY)
export PYSPARK_DRIVER_PYTHON := $(CURDIR)/$(PY)

CONFIG ?= conf/local.yaml
SET ?=
BENCH_SIZES ?= 100000 1000000
QUALITY_PEOPLE ?= 20000

.DEFAULT_GOAL := help
.PHONY: help setup run test test-fast lint format docs bench bench-quality image test-image docker-build clean

help: ## List the targets with what each does
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-14s %s\n", $$1, $$2}'

setup: $(VENV)/.installed jars/.fetched ## Create .venv, install the project with dev deps, fetch the Delta jars (no-op when done)

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "setup: $(PYTHON) not found: install Python 3.11" >&2; exit 2; }
	@command -v java >/dev/null || [ -x "$$JAVA_HOME/bin/java" ] || { echo "setup: java not found: install Java 17" >&2; exit 2; }
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

jars/.fetched: $(VENV)/.installed
	$(PY) -m linkage.jars
	@touch $@

run: setup ## Set up, generate a synthetic extract if paths.raw holds none, run the whole pipeline
	$(PY) -m jobs.pipeline --config $(CONFIG) $(SET)

test: setup ## Run the test suite (one Spark session, tiny data)
	$(PY) -m pytest

test-fast: setup ## Run the tests not marked slow or cluster
	$(PY) -m pytest -m "not slow and not cluster"

lint: setup ## Check style with ruff
	$(VENV)/bin/ruff check .

format: setup ## Format the code with ruff
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

docs: setup ## Regenerate the README's table schema reference from linkage/schemas.py
	$(PY) -m linkage.docs --write README.md

bench: setup ## Benchmark train and link at $(BENCH_SIZES) people against Splink on DuckDB and default Spark
	$(PY) -m linkage.bench --sizes $(BENCH_SIZES)

bench-quality: setup ## Accuracy on every generator profile and FEBRL3/4 (with plain Splink) -> data/bench/quality.md
	$(PY) -m linkage.quality_bench --people $(QUALITY_PEOPLE)

image: ## Build the single-node Spark image linkage:latest (Docker, or podman without a registry: docker/build.sh)
	docker/build.sh

test-image: ## Build the image cold, run the pipeline, the README's Docker quick start and compose in it (~10-15 min)
	docker/test-image.sh

docker-build: image ## Same as `make image` (older name)

clean: ## Remove the lake, generated data and caches (keeps .venv, jars and secrets)
	rm -rf lake data .pytest_cache .ruff_cache spark-warehouse
