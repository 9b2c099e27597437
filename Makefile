# MQTT ⇄ Kafka bridge operator. `make help` lists the targets.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# Builds and downloads are cached outside the checkout, so a fresh clone starts warm.
CACHE_DIR ?= $(or $(MKB_CACHE_DIR),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/mqtt-kafka-bridge)
export CARGO_TARGET_DIR ?= $(CACHE_DIR)/cargo-target
export MKB_CACHE_DIR := $(CACHE_DIR)
CARGO ?= cargo

.PHONY: help
help: ## List the targets.
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

.PHONY: test
test: lint ## Everything CI checks: lint, then every test against the test bed (started if needed).
	tests/testbed/run-suites.sh

.PHONY: lint
lint: ## Format check, clippy with -D warnings, and the runtime's dependency rule.
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	scripts/check-runtime-deps.sh

.PHONY: unit-tests
unit-tests: ## Unit and property tests (no servers), including the CRD staleness check.
	$(CARGO) test --workspace --locked --lib --bins

.PHONY: fuzz
fuzz: ## The no-panic property runs of the input parsers and the template renderer at scale (FUZZ_CASES, default a million each).
	PROPTEST_CASES=$(or $(FUZZ_CASES),1000000) $(CARGO) test --release --locked -p mkb-api --test no_panic

.PHONY: reliability
reliability: ## Faults under load (kill -9, broker restarts, network cuts, latency, throttling): the table of docs/reliability.md.
	scripts/reliability.sh $(RELIABILITY_ARGS)

.PHONY: crds
crds: ## Regenerate crds/mqttkafkabridges.mqttkafka.io.yaml (and the Helm chart's copy) from the Rust types.
	$(CARGO) run --quiet --locked -p mkb-api --bin crdgen > crds/mqttkafkabridges.mqttkafka.io.yaml.tmp
	mv crds/mqttkafkabridges.mqttkafka.io.yaml.tmp crds/mqttkafkabridges.mqttkafka.io.yaml
	cp crds/mqttkafkabridges.mqttkafka.io.yaml charts/mqtt-kafka-bridge-operator/crds/

.PHONY: images
images: ## Build the bridge-runtime and mkb-operator images (buildah, no Docker engine) into target/images/*.tar.
	scripts/images.sh

.PHONY: testbed
testbed: ## Install what is missing and start Mosquitto, Kafka (one broker and a three-broker cluster), HiveMQ CE and a Kubernetes control plane on 127.0.0.1.
	tests/testbed/up.sh

.PHONY: testbed-down
testbed-down: ## Stop everything `make testbed` started.
	tests/testbed/down.sh

.PHONY: demo
demo: ## Run the smart-lock bridge locally (Mosquitto + Kafka on loopback) and show messages flowing both ways.
	scripts/demo.sh

.PHONY: bench
bench: ## Throughput, latency, CPU and memory of bridge-runtime against the broker ceilings and Redpanda Connect, and the operator at 1/100/500 bridges: bench/results/ (docs/performance.md).
	bench/run.sh $(BENCH_ARGS)
