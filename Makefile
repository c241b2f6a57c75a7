# `make serve` and `make test` set themselves up on first use (see scripts/setup.sh).
VENV ?= .venv
BIN = $(VENV)/bin
# The scaled-down checkpoint and other build products live here (git-ignored).
export MISTRAL_LOCAL_CACHE_DIR ?= $(CURDIR)/.cache

.PHONY: setup browser sdk-ts serve test lint typecheck pytest

# On a host with an NVIDIA GPU the tests still run the CPU engine stack, as CI does, in an environment of their own
# (.venv-cpu, beside the GPU one `make serve` uses); `mistral-local qualify` is what checks the GPU (README).
HAS_GPU ?= $(shell nvidia-smi -L 2>/dev/null | grep -q GPU && echo 1)
ifeq ($(HAS_GPU),1)
test lint typecheck pytest: VENV = .venv-cpu
test lint typecheck pytest: export MISTRAL_LOCAL_STACK = cpu
test lint typecheck pytest: export CUDA_VISIBLE_DEVICES =
endif

setup:
	@VENV=$(VENV) bash scripts/setup.sh

# Debian's chromium, for the playground's browser tests.
browser:
	@bash scripts/browser.sh

# OpenRouter's TypeScript SDK (npm), for the SDK tests.
sdk-ts:
	@bash scripts/sdk_ts.sh

serve: setup
	$(BIN)/mistral-local serve $(ARGS)

lint: setup
	$(BIN)/ruff check server tests scripts
	$(BIN)/ruff format --check server tests scripts
	$(BIN)/hadolint --failure-threshold info Dockerfile.cuda
	$(BIN)/python scripts/check_structure.py
	$(BIN)/python scripts/request_path.py --quiet

typecheck: setup
	$(BIN)/mypy

# pytest exits 5 when it collected no tests; make treats that as the failure it is.
pytest: setup browser sdk-ts
	@[ "$(HAS_GPU)" != 1 ] || echo "make test: a GPU is here; the tests run the CPU engine stack ($(VENV)), as CI does"
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck pytest
