#!/usr/bin/env bash
# Runs the bench (`auditx-bench`, the workspace's bench/ crate): a meter
# export by the `auditx` binary, run as processes, of a generated lake
# (default 5 M rows, reused between runs) measured end to end beside DuckDB
# on the same Parquet files. DuckDB is the bench's pinned version, installed
# from PyPI into its own virtualenv (~/.cache/auditx-bench/duckdb-<version>).
# With --distributed it needs RabbitMQ and Redis: started (or installed) as
# for the tests. Extra arguments go to `auditx-bench` (--help lists them).
#
# Built exactly as the test command builds it (same profile: dependencies
# and the hot crates optimized, see Cargo.toml; same features), so the
# test command's build cache is reused.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/auditx-target}"
command -v cargo >/dev/null || { echo "cargo is required (rustup.rs)" >&2; exit 1; }
for arg in "$@"; do
  if [ "$arg" = "--distributed" ]; then scripts/services.sh; fi
done
cargo build --locked --workspace --all-targets
exec "$CARGO_TARGET_DIR/debug/auditx-bench" --auditx "$CARGO_TARGET_DIR/debug/auditx" "$@"
