#!/usr/bin/env bash
# The first README command: install what is needed, build, and run the main job on the
# embedded default (CPU devices when no GPU is present).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
tools/build.sh
build/src/cli/ditserve --version
build/src/cli/ditserve devices
build/src/cli/ditserve selfcheck
