#!/usr/bin/env bash
# The second README command: install what is needed, build, and run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
# Test tooling from PyPI: the reference safetensors implementation the io tests compare with.
if ! python3 -m pip install --quiet --disable-pip-version-check safetensors numpy; then
  echo "note: safetensors/numpy not installable here; the Python cross-check tests will skip"
fi
tools/build.sh
ctest --test-dir build --output-on-failure -j "$(nproc)" --timeout 600
