#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian machine, then runs lint, types and all tests.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh tests/server -x`).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# The browser layer drives Debian's Chromium (never a downloaded browser build).
if ! command -v chromium >/dev/null 2>&1; then
  as_root apt-get update -qq
  as_root apt-get install -y -qq chromium >/dev/null
fi
# The JupyterHub layer needs the hub's proxy.
if ! command -v configurable-http-proxy >/dev/null 2>&1; then
  as_root npm install -g --silent configurable-http-proxy
fi
# The README test builds a fresh venv with pip in it: Debian's own Python needs python3-venv.
if ! python -c "import ensurepip" >/dev/null 2>&1; then
  as_root apt-get update -qq
  as_root apt-get install -y -qq python3-venv >/dev/null
fi
python -m pip install -q --disable-pip-version-check -e ".[test]"

ruff check .
ruff format --check .
mypy
python -m pytest "$@"
