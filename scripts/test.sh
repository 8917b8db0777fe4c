#!/usr/bin/env bash
# Runs the whole test suite: starts (and if needed installs) RabbitMQ and
# Redis, builds the `auditx` binary the multi-process tests launch, then
# runs every test of the workspace, then schemathesis against the served
# OpenAPI document, then validates the Kubernetes manifests under deploy/.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/auditx-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

command -v cargo >/dev/null || { echo "cargo is required (rustup.rs)" >&2; exit 1; }
scripts/services.sh
# Zuora's Python SDK, which tests/tests/zuora_sdk.rs drives Data Query with.
scripts/zuora-sdk-venv.sh >/dev/null

# One build of every target with the features the tests unify (the
# `auditx` binary the multi-process tests launch included), so the binary
# and the tests share one set of compiled dependencies.
cargo build --locked --workspace --all-targets
cargo test --locked --workspace --no-fail-fast -- --test-threads="${AUDITX_TEST_THREADS:-4}"
scripts/schemathesis.sh
scripts/validate-deploy.sh
