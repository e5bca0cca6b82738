#!/usr/bin/env bash
# Runs on a lent GPU machine (issue 5): peak device memory of a whole Open-Sora 1.2
# generation at 720p x 102 frames (T5-XXL encode, STDiT3 steps with the guidance batch of 2,
# VAE decode of 102 frames) on random weights, `nvidia-smi` sampled every 200 ms beside it.
# GPU_MEMORY_FLAGS adds flags to `ditserve generate` (e.g. --cuda-graphs: the steps after
# the second replay a captured graph, whose memory is its own). The peak does not grow with
# the step count past 3 (each step's activations are freed; with graphs the capture is the
# second step). Writes $OUT/memory.log and $OUT/memory.json.
set -uo pipefail
cd "$(dirname "$0")/.."
flags=${GPU_MEMORY_FLAGS:-}
steps=${GPU_MEMORY_STEPS:-3}
start=$SECONDS
source bench/gpu_build.sh ditserve || exit 1
set +e
log="$OUT/memory.log"
gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1)
echo "build: $((SECONDS - start)) s; gpu: $gpu" | tee "$log"
cmd="ditserve generate --model opensora-v1.2 --random-weights 0 --frames 102 --size 1280x720 --steps $steps --device cuda:0 --prompt 'a red fox runs through fresh snow' -o /tmp/os.y4m $flags"
nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > /tmp/gpu_mem.csv &
monitor=$!
eval "build-gpu/src/cli/$cmd" 2>&1 | tee -a "$log"
kill $monitor
peak=$(sort -n /tmp/gpu_mem.csv | tail -1)
echo "peak GPU memory used: $peak MiB" | tee -a "$log"
python3 - "$peak" "$cmd" "$gpu" "$(cat .scratch/commit 2>/dev/null || echo unknown)" "$OUT/memory.json" <<'PY'
import json, sys
peak, cmd, gpu, commit, out = sys.argv[1:]
json.dump({"command": cmd + ", with nvidia-smi --query-gpu=memory.used -lms 200 beside it (bench/gpu_memory.sh)",
           "commit": commit, "gpu": gpu,
           "what": "peak device memory of a whole 720p x 102-frame Open-Sora 1.2 generation",
           "peak_gpu_memory_used_mib": int(peak), "peak_gpu_memory_used_gib": round(int(peak) / 1024, 2),
           "limit_gib": 40}, open(out, "w"), indent=1)
PY
echo "total: $((SECONDS - start)) s" | tee -a "$log"
