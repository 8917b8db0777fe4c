.PHONY: help demo test bench services build check fmt clippy deny deploy-check
export CARGO_TARGET_DIR ?= $(HOME)/.cache/auditx-target

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

demo: ## run the main job on the embedded default (no external services)
	scripts/demo.sh

test: ## run the whole test suite (starts RabbitMQ and Redis if needed)
	scripts/test.sh

bench: ## measure a 5 M-row export beside DuckDB (see docs/performance.md)
	scripts/bench.sh

services: ## start (or install) RabbitMQ and Redis on loopback
	scripts/services.sh

build: ## build the auditx binary (release)
	cargo build --release -p auditx

deploy-check: ## render and validate the Kubernetes manifests (no cluster needed)
	scripts/validate-deploy.sh

check: fmt clippy deny ## formatting, lints and the dependency gate

fmt: ## check formatting
	cargo fmt --all -- --check

clippy: ## lints, warnings are errors
	cargo clippy --locked --workspace --all-targets -- -D warnings

deny: ## licences, duplicate versions, sources, advisories (deny.toml)
	scripts/deny.sh
