# `make test` is the one test command: README, CI (.ci/run) and developers all use it.
VENV ?= .venv
PYTHON := $(VENV)/bin/python

.PHONY: test clean local-hosts

test: $(VENV)/.installed
	$(PYTHON) -m pytest

$(VENV)/.installed: requirements.txt requirements-test.txt
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -r requirements-test.txt
	touch $@

clean:
	rm -rf $(VENV) .pytest_cache

# Fake NPU devices and driver files for the nodes of Pulumi.local.yaml (root; `make test` does it too).
local-hosts: $(VENV)/.installed
	bash scripts/docker-engine.sh
	$(PYTHON) sim/local_hosts.py local
