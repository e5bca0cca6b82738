#!/usr/bin/env bash
# Configures and builds ditserve into build/ (the CUDA backend is built when nvcc is
# found). Extra arguments go to cmake, e.g. -DDITSERVE_CUDA=OFF.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -d /usr/local/cuda/bin ]]; then export PATH="/usr/local/cuda/bin:$PATH"; fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build build -j "$(nproc)"
