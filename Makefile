# sos-voice: the two commands a newcomer needs are `make demo` and `make test`.
# Both install what they need (apt packages, a virtualenv with the project) and are idempotent.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.sos-voice-installed
APT_PACKAGES := espeak-ng sox libportaudio2
APT_TEST_PACKAGES := chromium pulseaudio pulseaudio-utils libasound2-plugins mono-mcs libmono-system-net-http4.0-cil systemd
# CPU torch: the wheel on this machine kind's disk; a GPU machine installs its own CUDA torch
# first (then TORCH= skips this pin).
TORCH ?= torch==2.13.0
OUT ?= out
QUESTION ?= What causes a tsunami?

.PHONY: setup system system-test demo test lint format bench clean

## setup: system packages + virtualenv with the project and its dev extras
setup: system $(STAMP)

system:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

system-test: system
	@missing=""; for p in $(APT_TEST_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

# --no-compile: pip byte-compiles every file it installs (torch and transformers are thousands);
# Python compiles the few hundred modules a run imports on first use instead. On 2 cores the
# install takes 95 s instead of 185 s (a fresh clone's `make test`, CI).
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --no-compile --upgrade pip setuptools
	if [ -n "$(TORCH)" ]; then $(PIP) install -q --no-compile "$(TORCH)"; fi
	$(PIP) install -q --no-compile -e ".[dev]"
	touch $(STAMP)

## demo: speak a bundled question, answer it on the offline default, write out/answer.wav
demo: setup
	@mkdir -p $(OUT)
	espeak-ng -s 150 -w $(OUT)/question-22k.wav "$(QUESTION)"
	sox -q $(OUT)/question-22k.wav -r 16000 -c 1 -b 16 $(OUT)/question.wav pad 0.5 0.8
	$(VENV)/bin/sos-voice -v --wav $(OUT)/question.wav --out $(OUT)/answer.wav

## test: everything the CI runs
test: setup system-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	# Few malloc arenas: the suite starts hundreds of threads (servers, executors); glibc's
	# per-thread arenas would otherwise make the soak tests' RSS bounds measure fragmentation.
	MALLOC_ARENA_MAX=2 $(PY) -m pytest -q

lint:
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format:
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

bench: setup
	$(PY) bench/voice_latency.py

clean:
	rm -rf $(OUT) .pytest_cache .ruff_cache
