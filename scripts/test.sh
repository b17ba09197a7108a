#!/usr/bin/env bash
# Install everything the tests need into ./.venv and run them: lint, then pytest.
# Usage: bash scripts/test.sh [pytest arguments]   (this is the README's test command; CI runs it)
set -euo pipefail
cd "$(dirname "$0")/.."

# Headless Chromium and its driver for the real-browser tests (Debian packages).
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing chromium and chromium-driver (Debian packages) for the browser tests"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
    else
        echo "note: chromium/chromedriver missing and not root: browser tests will be skipped" >&2
    fi
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# The CPU build of PyTorch first: an unpinned torch would pull several GB of CUDA packages.
.venv/bin/python -m pip install -q torch==2.13.0
# bench: the peers and data of the benchmark scripts, which tests/test_scripts.py runs small
.venv/bin/python -m pip install -q -e ".[test,torch,bench]"

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m pytest "$@"
