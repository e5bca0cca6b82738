#!/usr/bin/env bash
# Sourced by the GPU scripts: unpacks the Debian packages carried in .deps/ (the lent GPU
# machines have no apt; bench/README.md says how .deps is filled) and builds the targets
# given as arguments into build-gpu/, without FFmpeg (videos as .y4m), and with the tests
# only when GPU_BUILD_TESTS=ON (GoogleTest then comes from .deps too).
set -euo pipefail
deps=/tmp/ditserve-deps
mkdir -p "$deps"
for f in .deps/*.deb; do dpkg -x "$f" "$deps"; done
lib="$deps/usr/lib/x86_64-linux-gnu"
export LD_LIBRARY_PATH="$lib:$lib/openblas-pthread:${LD_LIBRARY_PATH:-}"
export PKG_CONFIG_PATH="$lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$deps"
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DDITSERVE_TESTS="${GPU_BUILD_TESTS:-OFF}" \
  -DDITSERVE_FFMPEG=OFF -DPKG_CONFIG_EXECUTABLE="$deps/usr/bin/pkgconf" \
  -DCMAKE_PREFIX_PATH="$deps/usr" -DDITSERVE_BLAS_LIBRARY="$lib/openblas-pthread/libopenblas.so" \
  -DDITSERVE_CBLAS_INCLUDE="$deps/usr/include/x86_64-linux-gnu/openblas-pthread" > /tmp/ditserve-cmake.log 2>&1 \
  || { tail -30 /tmp/ditserve-cmake.log; exit 1; }
ninja -C build-gpu "$@" > /tmp/ditserve-build.log 2>&1 || { grep -B2 -A10 -E "error|FAILED" /tmp/ditserve-build.log | head -80; exit 1; }
