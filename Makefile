# The user interface of the project: `make help` lists the targets.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := $(shell sed -n 's/^UV_VERSION=//p' .env.example)
PYTEST := $(BIN)/python -m pytest

.PHONY: help up down status test test-unit test-integration lint lock clean

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

up: venv ## Start the sandbox (native processes when no Docker engine is reachable) and print its URLs
	@$(BIN)/python -m sandbox up

down: venv ## Stop everything `make up` started
	@$(BIN)/python -m sandbox down

status: venv ## Show what the sandbox is running
	@$(BIN)/python -m sandbox status

test: lint ## Everything runnable on this machine: lint, unit and integration tests
	@$(PYTEST) tests

test-unit: venv ## Unit tests only (no external services)
	@$(PYTEST) tests/unit

test-integration: venv ## Integration tests against real PostgreSQL, Redis, Celery and gunicorn
	@$(PYTEST) tests/integration

lint: venv ## ruff
	@$(BIN)/ruff check .

lock: venv ## Re-resolve requirements.lock and requirements-dev.lock from pyproject.toml
	@$(BIN)/uv pip compile -q pyproject.toml --generate-hashes --python-version 3.11 -o requirements.lock
	@$(BIN)/uv pip compile -q pyproject.toml --extra dev --generate-hashes --python-version 3.11 -o requirements-dev.lock

clean: down ## Remove the virtualenv and sandbox state
	@rm -rf $(VENV) .sandbox
