#!/usr/bin/env bash
# Installs what the console's browser tests (tests/tests/console.rs) drive:
# Debian's `chromium` (apt-get, when missing) and Playwright from PyPI in a
# cached virtualenv. Playwright only drives the system Chromium
# (`executable_path=/usr/bin/chromium`): `playwright install` is never run,
# nothing else is downloaded. Called by scripts/test.sh.
#
#   AUDITX_CONSOLE_VENV  the virtualenv (default ~/.cache/auditx-console-venv)
set -euo pipefail

PLAYWRIGHT_VERSION=1.65.3
VENV="${AUDITX_CONSOLE_VENV:-$HOME/.cache/auditx-console-venv}"

if ! command -v chromium >/dev/null; then
    echo "installing chromium (apt-get)"
    if [ "$(id -u)" = 0 ]; then SUDO=(); else SUDO=(sudo); fi
    "${SUDO[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

if ! "$VENV/bin/python" -c "import playwright, importlib.metadata as m; assert m.version('playwright') == '$PLAYWRIGHT_VERSION'" 2>/dev/null; then
    echo "installing playwright==$PLAYWRIGHT_VERSION into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "playwright==$PLAYWRIGHT_VERSION"
fi
