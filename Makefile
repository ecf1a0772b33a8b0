# Every target the README names. Each creates the environments it needs.
# The first python3.12 that runs: PATH (a pyenv shim fails while another version is global), then
# the newest pyenv 3.12. Override with `make PY312=/path/to/python3.12`.
ifeq ($(origin PY312),undefined)
PY312 := $(shell for p in python3.12 $$(ls -d "$${PYENV_ROOT:-$$HOME/.pyenv}"/versions/3.12*/bin/python3.12 2>/dev/null | sort -rV); do "$$p" -c "" 2>/dev/null && { command -v "$$p"; break; }; done)
endif
VENV := .venv
SAM_VENV := .venv-sam
SDK_VENV := .venv-sdk
# checkov pins its own boto3, like the SAM CLI, so it gets an environment of its own.
CHECKOV_VENV := .venv-checkov
PY := $(VENV)/bin/python
# sam build needs a real python3.12 first on PATH (the pyenv shim fails while the global is 3.11).
SAM := PATH=$(CURDIR)/$(VENV)/bin:$(PATH) SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam
NEED_PY312 = @test -n "$(PY312)" || { echo "python3.12 not found: install it (pyenv install 3.12) or run make PY312=/path/to/python3.12" >&2; exit 1; }

.PHONY: help venv tools demo up down env invoke test unit integration e2e lint format typecheck validate security build deploy bench clean

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(VENV)/.stamp: requirements/dev.txt pyproject.toml
	$(NEED_PY312)
	test -x $(PY) || $(PY312) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements/dev.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

$(SAM_VENV)/.stamp: requirements/sam.txt
	$(NEED_PY312)
	test -x $(SAM_VENV)/bin/python || $(PY312) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install -q -r requirements/sam.txt
	touch $@

$(SDK_VENV)/.stamp: requirements/sdk.txt
	$(NEED_PY312)
	test -x $(SDK_VENV)/bin/python || $(PY312) -m venv $(SDK_VENV)
	$(SDK_VENV)/bin/python -m pip install -q -r requirements/sdk.txt
	touch $@

$(CHECKOV_VENV)/.stamp: requirements/checkov.txt
	$(NEED_PY312)
	test -x $(CHECKOV_VENV)/bin/python || $(PY312) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install -q -r requirements/checkov.txt
	touch $@

venv: $(VENV)/.stamp ## project environment (functions, local cloud, tests)
tools: $(SAM_VENV)/.stamp $(SDK_VENV)/.stamp $(CHECKOV_VENV)/.stamp ## SAM CLI, SageMaker SDK and checkov, each in its own environment

demo: venv ## whole chain on the local cloud with the sample data, ending in a prediction
	$(VENV)/bin/xgbpipe demo

up: venv ## start the local cloud
	$(VENV)/bin/xgbpipe local up

down: venv ## stop the local cloud
	$(VENV)/bin/xgbpipe local down

env: venv ## print the shell exports that point boto3 and the AWS CLI at the local cloud
	@$(VENV)/bin/xgbpipe local env

FUNCTION ?= start_training
EVENT ?= events/$(FUNCTION).json
invoke: venv ## run one function on the local cloud: make invoke FUNCTION=predict EVENT=events/predict.json
	$(VENV)/bin/xgbpipe local invoke $(FUNCTION) --event $(EVENT)

test: venv tools ## unit, integration, template and end-to-end tests
	$(PY) -m pytest -n 2 --dist loadfile

unit: venv
	$(PY) -m pytest tests/unit

integration: venv
	$(PY) -m pytest tests/integration

e2e: venv
	$(PY) -m pytest tests/e2e

lint: venv ## ruff (lint and format check) and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy functions layers xgbpipe tools

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

typecheck: venv
	$(VENV)/bin/mypy functions layers xgbpipe tools

validate: venv tools ## cfn-lint and sam validate --lint
	$(VENV)/bin/cfn-lint template.yaml
	$(SAM) validate --lint --region us-east-1

security: $(CHECKOV_VENV)/.stamp ## checkov on template.yaml; each skipped check is explained in .checkov.yaml
	$(CHECKOV_VENV)/bin/checkov --config-file .checkov.yaml --quiet

build: venv tools ## sam build (no Docker needed)
	$(SAM) build

CONFIG_ENV ?= default
deploy: build ## sam deploy --guided to your AWS account (CONFIG_ENV=prod for production)
	$(SAM) deploy --guided --config-env $(CONFIG_ENV)

# The SAM CLI builds the functions whose size and cold start are measured; the SDK is not needed.
# The two environments install side by side, as in CI.
bench: ## benchmarks: the chain, predict path, local SageMaker, evaluation, Lambda cost, a 1 GB drop
	$(MAKE) -j2 venv $(SAM_VENV)/.stamp
	$(PY) -m benchmarks

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache
