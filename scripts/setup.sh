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
# The web page's browser tests drive headless Chromium (Debian's package; Playwright only drives it,
# `playwright install` is never run). Installed when missing and we are root (CI); else say how.
if ! command -v chromium >/dev/null 2>&1 && [ -z "${GAR_CHROMIUM:-}" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing Debian's chromium for the browser tests" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
    else
        echo "setup: chromium is missing; the browser tests need it: sudo apt-get install chromium" \
             "(or set GAR_CHROMIUM=/path/to/chromium)" >&2
    fi
fi
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
