#!/usr/bin/env bash
# Runs the main job on the embedded default (no external services):
# starts the product in-process, loads sample data, runs an export and
# shows where the files are, runs one of the seed's data queries next to the
# export and, on a terminal, keeps serving the console. Extra arguments go to
# `auditx demo`.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/auditx-target}"
command -v cargo >/dev/null || { echo "cargo is required (rustup.rs)" >&2; exit 1; }
# The build of scripts/test.sh (every target of the workspace, one set of
# features): building only `-p auditx` unifies other features and would
# compile most dependencies a second time, so the demo and the tests share
# one build in $CARGO_TARGET_DIR, whichever runs first.
cargo build --locked --workspace --all-targets
# On a terminal the demo keeps serving with a console link (Ctrl-C ends it).
serve=()
[ -t 1 ] && serve=(--serve)
exec "$CARGO_TARGET_DIR/debug/auditx" demo "${serve[@]}" "$@"
