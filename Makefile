# Spillway — `make run` starts the service, `make test` runs every check. Both set themselves up.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
RUN_STAMP := $(VENV)/.runtime-stamp
# `make run PORT=9000 HOST=0.0.0.0`. Only the command line sets them, not the environment: shells
# such as zsh keep the machine's name in HOST.
HOST := 127.0.0.1
PORT := 8080
AZURITE := .tools/node_modules/.bin/azurite-blob
AWSCLI := .tools/awscli/bin/aws

.DEFAULT_GOAL := help

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# What the service needs and nothing more: `make run` installs only this.
$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $(RUN_STAMP)

# The service and the test and lint tools (moto, mypy, ruff, emulators, DuckDB…), for `make test`.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(RUN_STAMP) $(STAMP)

install: $(STAMP) ## Create .venv and install Spillway with its dev tools

$(AZURITE): ## Azurite, the Azure Blob test server (npm, into .tools/)
	mkdir -p .tools
	npm install --prefix .tools --silent --no-audit --no-fund azurite@3

# Its own venv: awscli v1 pins botocore, which must not move the one Spillway runs on.
$(AWSCLI): ## The AWS CLI (v1, pip) for the Pinpoint tests, into .tools/awscli
	$(PYTHON) -m venv .tools/awscli
	.tools/awscli/bin/pip install --quiet --upgrade pip
	.tools/awscli/bin/pip install --quiet awscli

system-deps: ## Install the test servers' system packages (PostgreSQL, gnupg) when missing
	@scripts/system-deps.sh

run: $(RUN_STAMP) ## Start Spillway on 127.0.0.1:8080 (PORT=, HOST= to change; SQLite in ./.spillway)
	$(BIN)/spillway serve --host $(HOST) --port $(PORT)

lint: $(STAMP) ## ruff and mypy
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

test: system-deps $(STAMP) $(AZURITE) $(AWSCLI) lint ## Lint, then run the whole test suite against real servers
	$(BIN)/pytest

fuzz: $(STAMP) ## Fuzz the API with schemathesis against a real server (FUZZ_SECONDS, default 180)
	$(BIN)/python scripts/fuzz.py --max-time $(or $(FUZZ_SECONDS),180)

bench: $(STAMP) ## Run the benchmarks (ingest, export, stream, cluster) and print their figures
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/export.py
	$(BIN)/python benchmarks/stream.py
	$(BIN)/python benchmarks/cluster.py

# PORT counts only from the command line here too: its Makefile default is `make run`'s 8080.
cluster: $(RUN_STAMP) ## Start a local production topology: PostgreSQL, N serves behind HAProxy, M workers; SERVES=, WORKERS=, PORT=
	scripts/cluster.sh up --serves $(or $(SERVES),2) --workers $(or $(WORKERS),2) \
	  --port $(if $(filter command line,$(origin PORT)),$(PORT),8800)

cluster-down: ## Stop the topology `make cluster` started (its data stays in .cluster/)
	scripts/cluster.sh down

clean: ## Remove the virtualenv and caches (not your data)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

.PHONY: help install system-deps run lint test fuzz bench cluster cluster-down clean
