#!/usr/bin/env bash
# The second README command: install what is needed, build, and run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
tools/build.sh
ctest --test-dir build --output-on-failure -j "$(nproc)" --timeout 600
