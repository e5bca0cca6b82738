#!/usr/bin/env bash
# The second README command: install what is needed, build, and run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
# Test tooling from PyPI: the reference safetensors implementation the io tests compare with;
# openai (the official SDK, a real client of `ditserve serve`) and requests for the server's
# integration tests.
if ! python3 -m pip install --quiet --disable-pip-version-check safetensors numpy openai requests; then
  echo "note: safetensors/numpy/openai/requests not installable here; the Python tests will skip"
fi
tools/build.sh
ctest --test-dir build --output-on-failure -j "$(nproc)" --timeout 600
