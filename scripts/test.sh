#!/usr/bin/env bash
# Runs the gates and the whole test suite: `cargo fmt --check`, the
# import-circle check, the state-key check, `cargo deny` and `cargo clippy
# -D warnings`; then starts (and if needed installs) RabbitMQ and Redis,
# builds the `auditx` binary the multi-process tests launch, runs every
# test of the workspace (the console's in a headless Chromium), then
# schemathesis against the served OpenAPI document, then validates the
# Kubernetes manifests under deploy/.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/auditx-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

command -v cargo >/dev/null || { echo "cargo is required (rustup.rs)" >&2; exit 1; }
# Formatting first: it takes a second and names the file to fix.
cargo fmt --all -- --check
# No file of a crate imports a file that imports it back (docs/design.md).
python3 scripts/import-circles.py
# The state store is reached only through its domain stores (docs/design.md).
python3 scripts/state-keys.py
# The dependency gate: licences, duplicate versions, sources (deny.toml);
# advisories when RustSec's database can be fetched (scripts/deny.sh).
scripts/deny.sh
scripts/services.sh
# Chromium (apt-get) and Playwright (PyPI, cached virtualenv) for the console's browser tests.
scripts/browser-setup.sh
# Zuora's Python SDK, which tests/tests/zuora_sdk.rs drives Data Query with.
scripts/zuora-sdk-venv.sh >/dev/null

# One build of every target with the features the tests unify (the
# `auditx` binary the multi-process tests launch included), so the binary
# and the tests share one set of compiled dependencies.
cargo build --locked --workspace --all-targets
# Lints, every warning an error (same targets and features as the build).
cargo clippy --locked --workspace --all-targets -- -D warnings
cargo test --locked --workspace --no-fail-fast -- --test-threads="${AUDITX_TEST_THREADS:-4}"
scripts/schemathesis.sh
scripts/validate-deploy.sh
