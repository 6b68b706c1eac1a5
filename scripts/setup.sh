#!/usr/bin/env bash
# Create (or update) .venv at the repository root with everything gar-agent needs.
# Idempotent: re-running only reinstalls when pyproject.toml changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
VPY="$ROOT/.venv/bin/python"
STAMP=.venv/.gar-setup-stamp
WANT="$(sha256sum pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
    exit 0
fi
"$VPY" -m pip install --quiet --upgrade pip
# torch first and pinned, so that no dependency resolution pulls another multi-GB build.
case "$(uname -m)" in
    aarch64|arm64) TORCH="torch==2.9.1 torchvision==0.24.1" ;;
    *)             TORCH="torch==2.14.1 torchvision==0.29.1" ;;
esac
"$VPY" -m pip install --quiet $TORCH
"$VPY" -m pip install --quiet -e ".[all,ray,test]"
echo "$WANT" > "$STAMP"
