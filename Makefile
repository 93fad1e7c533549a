# fluid developer commands. Every target installs what it needs first, so a fresh
# clone only needs python3 (>= 3.11) and, for the Redis/PostgreSQL tests, apt.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(shell command -v python3.11 || command -v python3)
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
RUN := $(UV) run --frozen
PROTO_OUT := libs/sdk/src
PROTO_FILES := $(wildcard protos/fluid/scheduler/v1/*.proto)
BUF := tools/node_modules/.bin/buf

TEST_DIRS := tests libs/sdk/tests services/dispatcher/tests services/history/tests services/io-worker/tests

.PHONY: install dev test lint proto proto-check buf-lint

install: ## install uv (from PyPI) and the whole workspace
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen --all-packages

$(BUF): tools/package.json
	cd tools && npm ci --no-audit --no-fund --loglevel=error

dev: install ## run every service embedded on one port with the example tasks
	$(RUN) fluid dev

test: install $(BUF) ## run every test (lint and contract checks included)
	$(RUN) pytest

lint: install $(BUF) buf-lint
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy
	@for dir in $(TEST_DIRS); do [ ! -d $$dir ] || $(RUN) mypy $$dir || exit 1; done

buf-lint: $(BUF)
	cd protos && ../$(BUF) lint

proto: install ## regenerate the committed Python stubs from protos/
	$(RUN) python -m grpc_tools.protoc -I protos --python_out=$(PROTO_OUT) --grpc_python_out=$(PROTO_OUT) \
		--mypy_out=$(PROTO_OUT) --mypy_grpc_out=$(PROTO_OUT) $(PROTO_FILES)

proto-check: proto ## fail when the committed stubs differ from the protos
	@git diff --exit-code -- $(PROTO_OUT)/fluid/scheduler/v1 || (echo "generated stubs are stale: run make proto and commit" && exit 1)
