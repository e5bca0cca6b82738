#!/usr/bin/env bash
# Runs on a lent GPU machine: a quick A/B of one environment switch on STDiT3 step rows,
# ditserve only (no PyTorch reference), for when device time is short. Builds ditserve and
# gpu_check, runs gpu_check on the cases matching GPU_AB_CHECK (default: all), then
# `ditserve bench step --breakdown` on GPU_AB_ROWS twice in the same run: as built ("a")
# and with GPU_AB_ENV set ("b", e.g. DITSERVE_CUDNN_AUTOTUNE=0).
# The relative L2 difference between the two runs' step outputs (same weights and inputs)
# is printed per row. Writes $OUT/ab.log, $OUT/gpu_check.json, $OUT/a.json and $OUT/b.json.
set -uo pipefail
cd "$(dirname "$0")/.."
rows=${GPU_AB_ROWS:-144p-51f,720p-51f}
ab_env=${GPU_AB_ENV:?set GPU_AB_ENV, e.g. DITSERVE_CUDNN_AUTOTUNE=0}
start=$SECONDS
source bench/gpu_build.sh ditserve gpu_check || exit 1
set +e
log="$OUT/ab.log"
echo "build: $((SECONDS - start)) s; commit $(cat .scratch/commit 2>/dev/null || echo unknown)" | tee "$log"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1 | tee -a "$log"
check=()
[[ -n ${GPU_AB_CHECK:-} ]] && check=(--filter "$GPU_AB_CHECK")
build-gpu/tools/gpu_check "${check[@]}" --json "$OUT/gpu_check.json" > /tmp/gpu_check.txt 2>&1
tail -1 /tmp/gpu_check.txt | tee -a "$log"
grep -i "fail" /tmp/gpu_check.txt | head -20 | tee -a "$log"
bin=build-gpu/src/cli/ditserve
$bin bench step --component dit --rows "$rows" --warmup 1 --steps 3 --breakdown \
  --dump-dir /tmp/ab-a --json "$OUT/a.json" 2>&1 | tee -a "$log"
env "$ab_env" $bin bench step --component dit --rows "$rows" --warmup 1 --steps 3 --breakdown \
  --dump-dir /tmp/ab-b --json "$OUT/b.json" 2>&1 | tee -a "$log"
python3 - "$rows" <<'PY' 2>&1 | tee -a "$log"
import sys
from safetensors.torch import load_file
for row in sys.argv[1].split(","):
    a = load_file(f"/tmp/ab-a/{row}.safetensors")["output"].double()
    b = load_file(f"/tmp/ab-b/{row}.safetensors")["output"].double()
    print(f"{row}: rel. difference a vs b {float((a - b).norm() / b.norm()):.3e}")
PY
echo "b = a with $ab_env; total: $((SECONDS - start)) s" | tee -a "$log"
