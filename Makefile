# The user interface of the project: `make help` lists the targets.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := $(shell sed -n 's/^UV_VERSION=//p' .env.example)
PYTEST := $(BIN)/python -m pytest
# The pinned Go programs the tests and the native sandbox use (tools/build.sh; cached outside the repo).
GO_TOOLS := $(shell awk '!/^\#/ && $$2 == "make" { print $$1 }' tools/go-tools.txt)
# Those only the static checks use (helm, kubecheck): built by `make tools` too, never by `make up`.
CHECK_TOOLS := $(shell awk '!/^\#/ && $$2 == "check" { print $$1 }' tools/go-tools.txt)

.PHONY: help up down status ps logs doctor test preflight-up preflight-test test-unit test-integration lint check tools images dashboards lock clean bench

help: ## Show this list
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(VENV)/.synced: requirements-dev.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or set PYTHON=" >&2; exit 1; }
	@echo "==> Python environment ($(VENV))"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	@$(BIN)/uv pip sync -q --python $(BIN)/python requirements-dev.lock
	@$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	@touch $@

venv: $(VENV)/.synced

# Before anything is built or downloaded: what the machine lacks, installed (root, apt) or named with
# the one command that installs it (sandbox/preflight.py, standard library only).
preflight-up preflight-test: preflight-%:
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or set PYTHON=" >&2; exit 1; }
	@MODE=$(MODE) $(PYTHON) -m sandbox.preflight $*

# MODE=compose|native|auto for up (default: SANDBOX_MODE of .env, else auto).
SANDBOX_ARGS := $(if $(MODE),--mode $(MODE))

up: preflight-up venv ## Start the sandbox (the compose stack with a Docker engine, native processes without; MODE= to choose) and print its URLs
	@$(BIN)/python -m sandbox up $(SANDBOX_ARGS)

down: venv ## Stop everything `make up` started (compose: containers and network; data volumes stay)
	@$(BIN)/python -m sandbox down $(SANDBOX_ARGS)

status: venv ## Show what the sandbox is running
	@$(BIN)/python -m sandbox status

ps: venv ## The same as status: compose services with their health (native: the processes)
	@$(BIN)/python -m sandbox ps

logs: venv ## Follow the sandbox's logs; SERVICE=name for one service (compose) or component (native)
	@$(BIN)/python -m sandbox logs $(SERVICE)

doctor: venv ## Check what `make up` needs: Docker engine, compose v2, vm.max_map_count, memory, free ports
	@$(BIN)/python -m sandbox doctor $(SANDBOX_ARGS)

test: preflight-test lint tools ## Everything runnable on this machine: lint, static checks, unit, integration and e2e tests
	@$(PYTEST) tests

test-unit: venv ## Unit tests only (no external services)
	@$(PYTEST) tests/unit

test-integration: venv tools ## Integration tests against real PostgreSQL, Redis, Celery, gunicorn, Alertmanager
	@$(PYTEST) tests/integration

check: venv tools ## Static checks: compose, Prometheus rules (promtool), Alertmanager (amtool), ELK, Grafana, the Helm chart's objects (kubecheck); pip-audit of both lock files
	@$(PYTEST) tests/static

tools: ## Build the pinned Go tools (Prometheus and Mailpit with their web UIs, promtool, Alertmanager, amtool, Jaeger, the collector, Helm, checkers) into ~/.cache
	@tools/build.sh $(GO_TOOLS) $(CHECK_TOOLS) || { status=$$?; if [ $$status -eq 3 ] && [ "$${CI:-}" != true ]; then \
		echo "==> no Go (or no Node.js for the web UIs): the tests that need these tools skip"; else exit $$status; fi; }

images: ## Build the compose stack's images from package registries, no image registry needed (tools/images/README.md)
	@tools/images/build.sh

dashboards: venv ## Regenerate grafana/dashboards from grafana/build_dashboards.py
	@$(BIN)/python grafana/build_dashboards.py

bench: venv ## Measure the instrumentation's cost: gunicorn variants under wrk, micro-benchmarks (~20 min; bench/README.md)
	@$(BIN)/python -m bench

lint: venv ## ruff
	@$(BIN)/ruff check .

lock: venv ## Re-resolve requirements.lock and requirements-dev.lock from pyproject.toml
	@$(BIN)/uv pip compile -q pyproject.toml --generate-hashes --python-version 3.11 -o requirements.lock
	@$(BIN)/uv pip compile -q pyproject.toml --extra dev --generate-hashes --python-version 3.11 -o requirements-dev.lock

clean: venv ## Stop the sandbox and remove its data (compose volumes too), the virtualenv and .sandbox/
	@$(BIN)/python -m sandbox down --volumes $(SANDBOX_ARGS)
	@rm -rf $(VENV) .sandbox
