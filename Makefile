# `make test` is the one test command: README, CI (.ci/run) and developers all use it.
VENV ?= .venv
PYTHON := $(VENV)/bin/python

.PHONY: test lint format benchmark clean local-hosts

test: lint
	$(PYTHON) -m pytest

# Lint and formatting are part of the tests: one house style, checked on every run.
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

$(VENV)/.installed: requirements.txt requirements-test.txt
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -r requirements-test.txt
	touch $@

# Speed and memory of validation, planning, rendering and the mocked program, by cluster size.
benchmark: $(VENV)/.installed
	PYTHONPATH=.:tests $(PYTHON) benchmarks/plan_and_program.py
	PYTHONPATH=.:tests $(PYTHON) benchmarks/dependency_depth.py

clean:
	rm -rf $(VENV) .pytest_cache

# Fake NPU devices and driver files for the nodes of Pulumi.local.yaml (root; `make test` does it too).
local-hosts: $(VENV)/.installed
	bash scripts/docker-engine.sh
	$(PYTHON) -m sim.local_hosts local
	$(PYTHON) -m sim.local_hosts local-groups
