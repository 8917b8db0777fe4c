#!/usr/bin/env bash
# Validates deploy/ without a cluster: renders each kustomization
# (deploy/k8s/base and every deploy/k8s/overlays/*) with `kubectl kustomize`
# where kubectl is installed, and always with deploy/tools/kustomize_lite.py
# (the two must agree); checks every rendered document, the Redis
# dependency and the example Secrets against the Kubernetes JSON schemas
# (kubernetes-validate, strict: unknown fields fail) and the KEDA objects
# against KEDA's CRD schemas (deploy/schemas/); then checks selectors,
# ports, pod security and the sizes derived from auditx.toml, and the
# structure of the Prometheus rules (deploy/prometheus/). Prints every
# document it validated; exits non-zero on any problem.
#
#   scripts/validate-deploy.sh                      # validate deploy/
#   scripts/validate-deploy.sh --root /tmp/x/deploy # another copy of deploy/
#   AUDITX_RENDERER=lite scripts/validate-deploy.sh # ignore kubectl
#   scripts/validate-deploy.sh --kube-versions 1.31,1.33
#
# Needs python3 only: kubernetes-validate and PyYAML go into a virtualenv
# under ~/.cache (AUDITX_VENV), python3-venv comes from apt-get if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${AUDITX_VENV:-$HOME/.cache/auditx-venv}"
KUBERNETES_VALIDATE_VERSION=1.37.0

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "validate-deploy: need root to run: $*" >&2; return 1; fi
}

if ! command -v python3 >/dev/null; then
    as_root apt-get update -qq && as_root apt-get install -y -qq python3 python3-venv >/dev/null
fi

ready() {
    "$VENV/bin/python" - "$KUBERNETES_VALIDATE_VERSION" 2>/dev/null <<'EOF'
import sys
import jsonschema, yaml
import kubernetes_validate
if sys.version_info < (3, 11):
    import tomli
sys.exit(kubernetes_validate.__version__ != sys.argv[1])
EOF
}

if ! ready; then
    if [ ! -x "$VENV/bin/pip" ]; then
        # Debian's python3 lacks ensurepip until python3-venv is installed.
        if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
            as_root apt-get update -qq
            as_root apt-get install -y -qq python3-venv >/dev/null
            python3 -m venv "$VENV"
        fi
    fi
    "$VENV/bin/pip" install --quiet "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" pyyaml \
        "tomli; python_version < '3.11'"
fi

exec "$VENV/bin/python" deploy/tools/validate_manifests.py "$@"
