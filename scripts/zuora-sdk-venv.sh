#!/usr/bin/env bash
# Makes the virtualenv holding Zuora's official Python SDK (`zuora-sdk` from
# PyPI, pinned) that tests/tests/zuora_sdk.rs drives Data Query with, if it
# is missing or holds another version. Prints the venv's python.
#
#   AUDITX_ZUORA_SDK_VENV   the virtualenv (default ~/.cache/auditx-zuora-sdk-venv)
set -euo pipefail

VENV="${AUDITX_ZUORA_SDK_VENV:-$HOME/.cache/auditx-zuora-sdk-venv}"
ZUORA_SDK_VERSION=3.21.0

if ! "$VENV/bin/python" -c "import zuora_sdk, sys; sys.exit(zuora_sdk.__version__ != '$ZUORA_SDK_VERSION')" 2>/dev/null; then
    python3 -m venv "$VENV" >&2
    "$VENV/bin/pip" install --quiet "zuora-sdk==$ZUORA_SDK_VERSION" >&2
fi
echo "$VENV/bin/python"
