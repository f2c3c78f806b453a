# Front door for the common commands. Every target sets the machine up first (idempotent).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
## CDK environment from cdk.json for `make synth` (dev or prod). The region is CDK_DEPLOY_REGION,
## else AWS_REGION, else eu-west-1 (the CDK CLI overwrites CDK_DEFAULT_REGION, so it is not enough).
CDK_ENV ?= dev

.PHONY: setup setup-python lock demo test test-fast lint synth ami bench clean contract-doc

setup:
	@scripts/setup

## Only the .venv (no apt-get, no npm): what lint and test-fast need.
setup-python:
	@scripts/setup --python-only

## Rewrite requirements.lock (every transitive dependency, exact versions) after a pyproject.toml change.
lock:
	scripts/lock

## The main job: the whole platform on loopback, a smoke test against it, then stop.
demo: setup
	$(VENV)/bin/synapscribe demo

## The full test suite (what CI runs), in one run on 2 workers (pytest-xdist). A unit of work is a
## test file, or a whole folder whose tests share a slow session fixture (the nspawn host, the CDK
## synth, the real engine), so each fixture is made once; the longest units start first
## (tests/work_units.py).
TEST_WORKERS ?= 2
test: setup
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadfile

## Everything except the systemd-nspawn host verification. Needs only the .venv: a test whose
## tool (espeak-ng, sox, ffmpeg, packer) is not installed skips naming it (outside CI).
test-fast: setup-python
	SYNAPSCRIBE_MISSING_TOOLS=skip $(VENV)/bin/pytest -m "not host"

## docs/contract.md from the contract's models, after a change to runtime/synapscribe/contract/.
contract-doc: setup-python
	$(PY) -m synapscribe.cli contract --markdown > docs/contract.md.tmp
	mv docs/contract.md.tmp docs/contract.md

lint: setup-python
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

## The CloudFormation templates of every stack in cdk.out, offline (no AWS access needed: without
## credentials, placeholder account and region are used; with them, the CLI's own).
synth: setup
	CDK_DEFAULT_ACCOUNT=$${CDK_DEFAULT_ACCOUNT:-123456789012} \
	  CDK_DEPLOY_REGION=$${CDK_DEPLOY_REGION:-$${AWS_REGION:-$${CDK_DEFAULT_REGION:-eu-west-1}}} \
	  AWS_EC2_METADATA_DISABLED=$${AWS_EC2_METADATA_DISABLED:-true} \
	  npx cdk synth --quiet --no-notices -c env=$(CDK_ENV)

clean:
	rm -rf cdk.out build .pytest_cache .mypy_cache .ruff_cache

## Bake the GPU host image (ami/) and tag it baked (no environment gets it: see `synapscribe ami`).
## Options through AMI_ARGS, e.g. AMI_ARGS="--region eu-west-1"; Packer 1.11+ and AWS credentials.
ami: setup
	$(VENV)/bin/synapscribe ami bake $(AMI_ARGS)
