# streamscore: `make demo` and `make test` each do all set-up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PACKAGES := streamscore broker model_store training worker producer app monitor

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-10s %s\n", $$1, $$2}'

# Every dependency is hash-checked (--require-hashes) against requirements-dev.lock, setuptools
# included: the editable install is built from it without build isolation. The one line
# silenced is setuptools' notice that an install is editable (an information, not a defect).
$(STAMP): requirements.lock requirements-dev.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-dev.lock
	PYTHONWARNINGS="ignore:Editable installation" \
	  $(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

install: $(STAMP) ## create .venv and install the pinned dependencies and streamscore

lock: $(STAMP) ## regenerate both lock files (with hashes) from pyproject.toml's ranges (uv)
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 --generate-hashes \
	  --custom-compile-command "make lock" --quiet -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --extra dev -c requirements.lock --python-version 3.11 \
	  --generate-hashes --custom-compile-command "make lock" --quiet -o requirements-dev.lock

demo: $(STAMP) ## end-to-end demo on the embedded broker
	$(BIN)/streamscore demo

lint: $(STAMP) ## ruff lint + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint Dockerfile

types: $(STAMP) ## mypy (strict) on the packages
	$(BIN)/mypy

contracts: $(STAMP) ## architecture contracts: which layer may import which (README, Development)
	$(BIN)/lint-imports

pytest: $(STAMP) ## the test suite on the embedded broker (real broker, real files)
	$(BIN)/pytest -m "not kafka"

# The broker tests again on Apache Kafka 4.4.0 (broker/kafka.py), when java and mvn are here;
# under CI=true their absence fails (the pytest fixture says what to install).
pytest-kafka: $(STAMP) ## the broker tests again on Apache Kafka 4.4.0 (needs java 17+ and mvn)
	@if command -v java >/dev/null && command -v mvn >/dev/null || [ "$${CI:-}" = true ]; then \
		$(BIN)/pytest -m "broker or kafka" --broker-engine kafka; \
	else \
		echo "pytest-kafka: skipped, no java and mvn here (apt-get install openjdk-17-jre-headless maven)"; \
	fi

test: lint types contracts pytest pytest-kafka ## everything CI runs: lint, types, contracts, tests on both brokers

bench/.venv-quix/.installed: bench/quix-requirements.txt
	$(BIN)/python -m bench --setup-quix
	@touch $@

bench: $(STAMP) bench/.venv-quix/.installed ## throughput/latency benchmark side by side with baselines (~20 min)
	$(BIN)/python -m bench

format: $(STAMP) ## apply ruff's formatting and safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

broker-stop: $(STAMP) ## stop the embedded broker the demo started
	$(BIN)/streamscore broker stop

clean: ## remove runtime state (models, data, logs) but keep .venv
	rm -rf var

.PHONY: help install lock demo lint types contracts pytest pytest-kafka test bench format broker-stop clean
