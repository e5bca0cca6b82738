#!/usr/bin/env bash
# Runs on a lent GPU machine (see bench/README.md): builds ditserve with the Debian
# packages carried in .deps/ (the machine has no apt), then
#   1. tools/gpu_check: every CUDA op against the CPU backend (f32 and bf16),
#   2. ditserve selfcheck on cpu:0 and cuda:0,
#   3. bench/ops/op_bench and bench/ops/torch_ops.py: GEMM and attention beside PyTorch,
# writing under $OUT (at most 8 files come back): gpu_check.{txt,json}, selfcheck.txt,
# op_bench.json, torch_ops.json and the merged foundation_ops.json.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/gpu_build.sh ditserve gpu_check op_bench
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
commit=$(cat .scratch/commit 2>/dev/null || echo unknown)  # written by the caller: git rev-parse HEAD
status=0
build-gpu/tools/gpu_check --json "$OUT/gpu_check.json" > "$OUT/gpu_check.txt" 2>&1 || status=1
tail -5 "$OUT/gpu_check.txt"
build-gpu/src/cli/ditserve selfcheck > "$OUT/selfcheck.txt" 2>&1 || status=1
tail -1 "$OUT/selfcheck.txt"
build-gpu/bench/op_bench --json "$OUT/op_bench.json"
python3 bench/ops/torch_ops.py "$OUT/torch_ops.json"
python3 bench/ops/compare.py "$OUT/op_bench.json" "$OUT/torch_ops.json" "$OUT/gpu_check.json" \
  --commit "$commit" --command "bench/gpu_foundation.sh" --out "$OUT/foundation_ops.json"
exit $status
