# Front door for the common commands. Every target sets the machine up first (idempotent).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1

.PHONY: setup demo test test-fast lint synth ami bench clean

setup:
	@scripts/setup

## The main job: the whole platform on loopback, a smoke test against it, then stop.
demo: setup
	$(VENV)/bin/synapscribe demo

## The full test suite (what CI runs).
test: setup
	$(VENV)/bin/pytest

## Everything except the systemd-nspawn host verification.
test-fast: setup
	$(VENV)/bin/pytest -m "not host"

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

clean:
	rm -rf cdk.out build .pytest_cache .mypy_cache .ruff_cache
