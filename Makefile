# One entry point for every task. `make serve` and `make test` work on a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROTO_SRC := $(shell find protos -name '*.proto')
GEN_DIR := client/src

CIFAR10_DIR ?= $(firstword $(wildcard ../shared/datasets/cifar-10-batches-py))
MODEL_ROOT ?= models
GATEWAY_PORT ?= 50051
BACKEND_PORT ?= 8500
METRICS_PORT ?= 9464

.PHONY: setup proto proto-check serve test lint format typecheck clean bench rollout loadtest fuzz soak faults

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml client/pyproject.toml tests/interop/node/package-lock.json
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is required"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e client/ -e .
	if [ -f tests/interop/node/package-lock.json ] && command -v npm >/dev/null; then npm ci --prefix tests/interop/node --no-audit --no-fund; else echo "npm not found: the Node interop tests will be skipped"; fi
	command -v prometheus >/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	  --no-install-recommends prometheus >/dev/null; } || \
	  echo "prometheus not installed: the Prometheus scrape test will be skipped"
	command -v openssl >/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	  --no-install-recommends openssl >/dev/null; } || \
	  echo "openssl not installed: the TLS tests will fail"
	compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	  --no-install-recommends postgresql >/dev/null; } || \
	  echo "postgresql not installed: the PostgreSQL tests will be skipped"
	touch $(STAMP)

# Regenerates the protobuf/gRPC code (with mypy stubs) from protos/ into the client package.
proto: $(STAMP)
	$(PY) protos/generate.py --out $(GEN_DIR)

# Fails when the committed generated code differs from what protos/ generates.
proto-check: $(STAMP)
	$(PY) protos/generate.py --check --out $(GEN_DIR)

serve: $(STAMP)
	MODEL_ROOT=$(MODEL_ROOT) CIFAR10_DIR=$(CIFAR10_DIR) GATEWAY_PORT=$(GATEWAY_PORT) BACKEND_PORT=$(BACKEND_PORT) \
	$(PY) -m server.dev_stack

# Lint, the client's strict typing, then every test (unit and integration, real servers).
test: $(STAMP) lint typecheck
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Strict typing on the client and on the server modules written since (the gateway, the experiment
# core and its store, the neutral `common` package).
TYPED := client/src/imgclf_client common server/gateway server/experiments server/store server/periodic.py \
	server/rollout server/models_config.py server/model_versions.py server/labels.py \
	server/dev_canary.py tests/load/run.py bench/loadtest_report.py bench/rollout_report.py \
	bench/costly_images.py
typecheck: $(STAMP)
	$(VENV)/bin/mypy --strict $(TYPED)

# Fuzzes the running gateway through real gRPC (hypothesis, tests/fuzz/): over 10,000 cases of
# encoded images, raw pixels, selectors and malformed messages; none may answer INTERNAL or
# UNKNOWN. Prints cases per family and the status histogram and writes docs/fuzz.md; 4-7 min.
# `make test` runs a short derandomized pass of the same tests (and never writes the report).
FUZZ_ARGS ?=
fuzz: $(STAMP)
	IMGCLF_FUZZ_PROFILE=long IMGCLF_FUZZ_REPORT=docs/fuzz.md IMGCLF_FUZZ_COMMAND="make fuzz" \
	  IMGCLF_FUZZ_STARTED=$$(date +%s.%N) \
	  $(PY) -m pytest tests/fuzz -p no:cacheprovider -q --timeout 3600 $(FUZZ_ARGS)

# Serving benchmark (issue 4), every path side by side -> docs/benchmark.{md,json}; ~4 min.
# Quick look: make bench BENCH_ARGS='--warmup 1 --duration 3'
BENCH_ARGS ?= --warmup 3 --duration 10
bench: $(STAMP)
	$(PY) -m bench $(BENCH_ARGS)

# Soak (issue 10): Classify at the concurrency that saturates the machine (a short ramp picks it)
# for 10 minutes after a 1-minute warm-up, sampling the gateway's RSS -> docs/soak.{md,json},
# PASS/FAIL on memory growth. Quick look: make soak SOAK_ARGS='--warmup 5 --duration 30'
SOAK_ARGS ?=
soak: $(STAMP)
	$(PY) -m bench.soak --model-root $(MODEL_ROOT) $(SOAK_ARGS)

# Faults (issue 10): kill and freeze the model host under the gateway; time to NOT_SERVING, to
# UNAVAILABLE, and to recover -> docs/faults.{md,json}; ~6 min with 5 repeats.
FAULTS_ARGS ?= --repeats 5
faults: $(STAMP)
	$(PY) -m bench.faults --model-root $(MODEL_ROOT) $(FAULTS_ARGS)

# Rolls out version VERSION of MODEL on `make serve`'s stack with a plan of
# serving_config/rollout.toml (PLAN, default "default"); see `python -m server.rollout --help`.
MODEL ?= cnn
PLAN ?= default
rollout: $(STAMP)
	@test -n "$(VERSION)" || { echo "usage: make rollout MODEL=cnn VERSION=N [PLAN=default]"; exit 2; }
	$(PY) -m server.rollout start --model $(MODEL) --version $(VERSION) --plan $(PLAN) \
	  --config run/models.config --backend localhost:$(BACKEND_PORT) --gateway localhost:$(GATEWAY_PORT)

# Locust over gRPC against the gateway (starts the local stack when none answers at HOST), gated by
# tests/load/thresholds.toml; reports go to runs/loadtest/<time>/. For a cluster:
# make loadtest HOST=gateway.example:50051 PROFILE=cluster LOADTEST_ARGS='--tls --ca-cert ca.pem'
HOST ?= localhost:$(GATEWAY_PORT)
USERS ?= 32
SPAWN_RATE ?= 8
RUN_TIME ?= 1m
PROFILE ?= default
LOADTEST_ARGS ?=
loadtest: $(STAMP)
	$(PY) -m tests.load.run --host $(HOST) --users $(USERS) --spawn-rate $(SPAWN_RATE) \
	  --run-time $(RUN_TIME) --profile $(PROFILE) $(LOADTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
