# Two commands do everything on a fresh Debian machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
FUZZ_SECONDS ?= 60
PYTEST_ARGS ?=

.PHONY: all venv sysdeps peers demo test pytest lint typecheck bench fuzz fuzz-ci clean

all: test

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -qq --upgrade pip
	$(PY) -m pip install -qq -e '.[test,bench]'
	@touch $(STAMP)

venv: $(STAMP)

# Optional native libraries (libopus0, libportaudio2): installed with apt-get when root, else a hint.
sysdeps:
	@bash scripts/sysdeps.sh

# Real interop peers (sipp, Kamailio, baresip, coturn, tshark, OpenSSL, Chromium + JsSIP).
peers:
	@bash tests/interop/install.sh

demo: venv sysdeps
	$(VENV)/bin/voice-sdk demo

lint: venv
	$(VENV)/bin/ruff check sipcore rtpcore voice_sdk tests fuzz benchmarks

typecheck: venv
	$(VENV)/bin/mypy

pytest: venv
	@bash scripts/run_pytest.sh $(PYTEST_ARGS)

test: venv sysdeps peers lint typecheck pytest fuzz-ci

bench: venv sysdeps
	$(PY) -m benchmarks

fuzz: venv
	$(PY) -m fuzz --seconds $(FUZZ_SECONDS)

fuzz-ci: venv
	$(PY) -m fuzz --seconds 20

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis
