# fluid developer commands. Every target installs what it needs first, so a fresh
# clone only needs python3 (>= 3.11) and, for the Redis/PostgreSQL tests, apt.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
# The interpreter's real path: uv takes a pyenv shim for another interpreter than the one the
# venv was made with, and would rebuild .venv on every call (under other running tests).
export UV_PYTHON := $(shell python3.11 -c 'import sys; print(sys.executable)' 2>/dev/null || python3 -c 'import sys; print(sys.executable)')
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
RUN := $(UV) run --frozen
PROTO_OUT := libs/sdk/src
PROTO_FILES := $(wildcard protos/fluid/scheduler/v1/*.proto)
BUF := tools/node_modules/.bin/buf
TS_CLIENT := clients/typescript
# npm ci writes this file: it is newer than the lock once the install is current.
TS_DEPS := $(TS_CLIENT)/node_modules/.package-lock.json
# The gateway's web dashboard: sources and lock here, the bundle committed under STATIC.
DASHBOARD := services/gateway/dashboard
DASHBOARD_STATIC := services/gateway/src/fluid_gateway/static
DASHBOARD_DEPS := $(DASHBOARD)/node_modules/.package-lock.json
# Every service package gets an image fluid-<service>:$(IMAGE_TAG), all from the one Dockerfile.
SERVICES := $(patsubst services/%/pyproject.toml,%,$(wildcard services/*/pyproject.toml))
DOCKER ?= docker
IMAGE_PREFIX ?=
IMAGE_TAG ?= dev
OVERLAYS := $(notdir $(wildcard deploy/k8s/overlays/*))
MANIFESTS_OUT := .build/k8s

TEST_DIRS := tests libs/sdk/tests services/dispatcher/tests services/history/tests services/io-worker/tests services/cpu-runner/tests services/scheduler/tests services/gateway/tests

.PHONY: install dev test fuzz services lint proto proto-check buf-lint breaking images manifests clients clients-check dashboard dashboard-check bench-history bench-cpu bench bench-peers bench-scheduler

install: ## install uv (from PyPI) and the whole workspace
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen --all-packages

$(BUF): tools/package.json
	cd tools && npm ci --no-audit --no-fund --loglevel=error

dev: install ## run every service embedded on one port with the example tasks
	$(RUN) fluid dev

test: install $(BUF) services ## run every test (contract checks included)
	$(RUN) pytest

FUZZ_REQUESTS ?= 50000
FUZZ_SEED ?= $(shell date +%s)

fuzz: install ## a long fuzz of every dispatcher and history RPC (FUZZ_REQUESTS, FUZZ_SEED)
	FLUID_FUZZ_REQUESTS=$(FUZZ_REQUESTS) FLUID_FUZZ_SEED=$(FUZZ_SEED) $(RUN) pytest -s --timeout 3600 tests/e2e/test_fuzz.py

services: ## make sure the local Redis and PostgreSQL the tests need run, and chromium is there (starts or installs them)
	@bash .ci/services.sh

lint: install $(BUF) buf-lint breaking dashboard-check
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy
	@for dir in $(TEST_DIRS); do [ ! -d $$dir ] || $(RUN) mypy $$dir || exit 1; done
	$(RUN) lint-imports --no-logo

BENCH_PEERS_ALL := aio-fluid saq taskiq arq dramatiq

bench: install ## fluid's full gRPC path on a local Redis: single and bulk enqueue, drain, history lag, round trip p50/p99 and its hops
	$(RUN) python bench/fluid_bench.py

bench-peers: install ## the peers' workload on fluid (SQLite and PostgreSQL history), aio-fluid, SAQ, taskiq, arq and dramatiq (each in .bench/<peer>/): a table and docs/bench-peers.png
	UV="$(UV)" bash bench/peers/make_venv.sh $(BENCH_PEERS_ALL)
	$(RUN) python bench/peers/compare.py

bench-history: install ## history on PostgreSQL (FLUID_BENCH_DATABASE_URL): ingest rate, page p99 over 1M runs
	$(RUN) python services/history/bench.py

buf-lint: $(BUF)
	cd protos && ../$(BUF) lint

breaking: $(BUF) ## buf breaking against the last release tag (v*); skipped until there is one
	@tag=$$(git describe --tags --abbrev=0 --match 'v[0-9]*' 2>/dev/null || true); \
	if [ -z "$$tag" ]; then \
		echo "buf breaking: skipped, no release tag (v*) to compare the protos against yet"; \
	else \
		echo "buf breaking against $$tag"; \
		cd protos && ../$(BUF) breaking --against "../.git#tag=$$tag,subdir=protos"; \
	fi

images: $(addprefix image-,$(SERVICES)) ## build every service's image with docker (BuildKit)

image-%:
	$(DOCKER) build -f Dockerfile --build-arg SERVICE=$* -t $(IMAGE_PREFIX)fluid-$*:$(IMAGE_TAG) .

manifests: install ## render every deploy/k8s overlay with kubectl kustomize into .build/k8s/
	@mkdir -p $(MANIFESTS_OUT)
	@for overlay in $(OVERLAYS); do \
		$(RUN) kubectl kustomize deploy/k8s/overlays/$$overlay > $(MANIFESTS_OUT)/$$overlay.yaml || exit 1; \
		echo "rendered $(MANIFESTS_OUT)/$$overlay.yaml"; \
	done

$(TS_DEPS): $(TS_CLIENT)/package.json $(TS_CLIENT)/package-lock.json
	cd $(TS_CLIENT) && npm ci --no-audit --no-fund --loglevel=error

clients: $(BUF) $(TS_DEPS) ## regenerate the TypeScript client from protos/ (commit src/gen) and compile it
	$(BUF) generate --template $(TS_CLIENT)/buf.gen.yaml
	cd $(TS_CLIENT) && npm run --silent build

clients-check: $(BUF) $(TS_DEPS) ## fail when the committed TypeScript client differs from the protos
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(BUF) generate --template $(TS_CLIENT)/buf.gen.yaml --output "$$tmp" && \
	diff -r "$$tmp/$(TS_CLIENT)/src/gen" $(TS_CLIENT)/src/gen \
		|| (echo "the TypeScript client is stale: run make clients and commit" && exit 1)

$(DASHBOARD_DEPS): $(DASHBOARD)/package.json $(DASHBOARD)/package-lock.json
	cd $(DASHBOARD) && npm ci --no-audit --no-fund --loglevel=error

dashboard: ## rebuild the gateway's web dashboard (npm ci, esbuild) into its static folder: commit it
	cd $(DASHBOARD) && npm ci --no-audit --no-fund --loglevel=error && node build.mjs ../src/fluid_gateway/static

dashboard-check: $(DASHBOARD_DEPS) ## fail when the committed dashboard bundle differs from what a build makes
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	(cd $(DASHBOARD) && node build.mjs "$$tmp/static" >/dev/null) && \
	diff -r "$$tmp/static" $(DASHBOARD_STATIC) \
		|| (echo "the dashboard bundle is stale: run make dashboard and commit" && exit 1)

proto: install ## regenerate the committed Python stubs from protos/
	$(RUN) python -m grpc_tools.protoc -I protos --python_out=$(PROTO_OUT) --grpc_python_out=$(PROTO_OUT) \
		--mypy_out=$(PROTO_OUT) --mypy_grpc_out=$(PROTO_OUT) $(PROTO_FILES)

proto-check: proto clients-check ## fail when the committed stubs differ from the protos
	@git diff --exit-code -- $(PROTO_OUT)/fluid/scheduler/v1 || (echo "generated stubs are stale: run make proto and commit" && exit 1)

bench-cpu: install ## cpu-bound round trip p50/p99: fresh interpreter against warm fork
	$(RUN) python services/cpu-runner/bench/cpu_bench.py

bench-scheduler: install ## slot lateness p50/p99 (slot time -> run accepted) of a leader and a standby on a local Redis
	$(RUN) python services/scheduler/bench/scheduler_bench.py
