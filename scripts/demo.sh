#!/usr/bin/env bash
# Runs the main job on the embedded default (no external services):
# starts the product in-process, loads sample data, runs an export and
# shows where the files are. Extra arguments go to `auditx demo`.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/auditx-target}"
command -v cargo >/dev/null || { echo "cargo is required (rustup.rs)" >&2; exit 1; }
cargo run --locked -p auditx --bin auditx -- demo "$@"
