#!/usr/bin/env bash
# The first README command: install what is needed, build, and run the main job on the
# embedded default: the built-in `tiny` model generating a short video, on the first GPU
# when one is present, else on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
tools/build.sh
ditserve=build/src/cli/ditserve
"$ditserve" --version
"$ditserve" devices
"$ditserve" selfcheck
device=cpu
if "$ditserve" devices | grep -q '^cuda:0'; then device=cuda:0; fi
mkdir -p out
"$ditserve" generate --model tiny --prompt "a lighthouse on a cliff at sunset, waves below" \
  --frames 16 --size 64x64 --steps 10 --seed 7 --device "$device" -o out/tiny.mp4
