#!/usr/bin/env bash
# Installs the Debian 12 packages ditserve builds and tests with. Idempotent; needs root.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libopenblas-dev          # CPU GEMM
  nlohmann-json3-dev       # JSON: checkpoints' headers, profiles, HTTP bodies
  libcli11-dev             # command-line parsing
  libgtest-dev libgmock-dev  # unit tests
  ffmpeg                   # ffprobe, used by tests to check written videos
  libsentencepiece-dev     # the prompt tokenizer; its trainer builds the `tiny` tokenizer
  libavcodec-dev           # H.264 (libx264) and PNG encoders for generated videos/images
  libavformat-dev          # the MP4 container
  libavutil-dev            # FFmpeg frames and options, used with the two above
  libswscale-dev           # RGB -> YUV 4:2:0 conversion before H.264 encoding
  libcpp-httplib-dev       # HTTP/1.1 server of `ditserve serve` (a compiled library on Debian)
  libsqlite3-dev           # the server's job store: jobs survive restarts
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
