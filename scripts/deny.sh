#!/usr/bin/env bash
# The dependency gate (deny.toml): licences, bans (duplicate versions,
# wildcards) and sources always; advisories (RustSec's database, a git
# repository on GitHub) when the database can be fetched. Installs
# cargo-deny (crates.io, `cargo install --locked`) when missing. Called by
# scripts/test.sh.
#
# Without network access to GitHub the advisories check runs against the
# last fetched copy of the database if there is one (saying how old it
# is), else it is skipped with a warning: set AUDITX_REQUIRE_ADVISORIES=1
# to fail instead.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DENY_VERSION=0.20.2
ADVISORY_DB_URL=https://github.com/rustsec/advisory-db

if ! cargo deny --version 2>/dev/null | grep -q " $CARGO_DENY_VERSION\$"; then
    echo "installing cargo-deny $CARGO_DENY_VERSION (cargo install)"
    # Its own target dir: not the workspace's, whose features it would not share.
    CARGO_TARGET_DIR="${CARGO_HOME:-$HOME/.cargo}/cargo-deny-build" \
        cargo install --locked --quiet cargo-deny --version "$CARGO_DENY_VERSION"
    rm -rf "${CARGO_HOME:-$HOME/.cargo}/cargo-deny-build"
fi

cargo deny --locked check licenses bans sources

# cargo-deny keeps the database under $CARGO_HOME/advisory-dbs/.
db_dir="${CARGO_HOME:-$HOME/.cargo}/advisory-dbs"
if timeout 20 git ls-remote --exit-code "$ADVISORY_DB_URL" HEAD >/dev/null 2>&1; then
    cargo deny --locked check advisories
elif compgen -G "$db_dir/advisory-db-*" >/dev/null; then
    fetched=$(stat -c %y "$db_dir"/advisory-db-* | sort | tail -1 | cut -d. -f1)
    echo "WARNING: $ADVISORY_DB_URL unreachable: advisories checked against the copy fetched $fetched" >&2
    cargo deny --locked check --disable-fetch advisories
elif [ "${AUDITX_REQUIRE_ADVISORIES:-0}" = 1 ]; then
    echo "advisories: $ADVISORY_DB_URL unreachable and no local copy (AUDITX_REQUIRE_ADVISORIES=1)" >&2
    exit 1
else
    echo "WARNING: advisories NOT CHECKED: $ADVISORY_DB_URL unreachable and no local copy of the database" >&2
fi
