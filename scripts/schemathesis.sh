#!/usr/bin/env bash
# Runs schemathesis (from PyPI, installed into a cached virtualenv) against
# the OpenAPI document a real `auditx standalone` serves: every check but
# use_after_free, and any failure fails the run. The configuration
# (tests/schemathesis/schemathesis.toml) allows one documented answer to valid
# data: cancelQuery's 400 for a data query that has already ended, as Zuora's
# reference answers it (a check of tests/schemathesis/hooks.py makes sure a
# 400 there is that case). Called by scripts/test.sh
# after the cargo tests; needs the `auditx` binary built.
#
#   AUDITX_BIN                 the binary (default: target/debug/auditx)
#   SCHEMATHESIS_MAX_EXAMPLES  cases per operation and phase (default 50)
#   SCHEMATHESIS_SEED          generation seed (default: a fresh one each run,
#                              printed first; set it to replay a failing run)
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/auditx-target}"
BIN="${AUDITX_BIN:-$CARGO_TARGET_DIR/debug/auditx}"
VENV="${AUDITX_VENV:-$HOME/.cache/auditx-venv}"
SCHEMATHESIS_VERSION=4.32.5

if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
API_PORT=$(free_port)
S3_PORT=$(free_port)
DATA=$(mktemp -d)
LOG="$DATA/standalone.log"
"$BIN" standalone --data-dir "$DATA" --listen "127.0.0.1:$API_PORT" --s3-listen "127.0.0.1:$S3_PORT" >"$LOG" 2>&1 &
PID=$!
cleanup() { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; rm -rf "$DATA"; }
trap cleanup EXIT

for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$API_PORT/readyz" >/dev/null 2>&1 && break
    kill -0 "$PID" 2>/dev/null || { cat "$LOG" >&2; exit 1; }
    sleep 0.2
done
TOKEN=$("$BIN" token --tenant schemathesis --data-dir "$DATA")

SEED="${SCHEMATHESIS_SEED:-$(python3 -c 'import secrets; print(secrets.randbelow(2**31))')}"
echo "schemathesis seed: $SEED (replay with SCHEMATHESIS_SEED=$SEED scripts/schemathesis.sh)"
echo "schemathesis $SCHEMATHESIS_VERSION against http://127.0.0.1:$API_PORT/openapi.json"
PYTHONPATH="$PWD/tests/schemathesis" SCHEMATHESIS_HOOKS=hooks \
    "$VENV/bin/schemathesis" --config-file tests/schemathesis/schemathesis.toml \
    run "http://127.0.0.1:$API_PORT/openapi.json" \
    --checks all --exclude-checks use_after_free \
    --header "Authorization: Bearer $TOKEN" \
    --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-50}" \
    --seed "$SEED" \
    --no-color
