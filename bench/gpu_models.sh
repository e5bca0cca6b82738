#!/usr/bin/env bash
# Runs on a lent GPU machine: the models issue's GPU checks, in order of importance.
#   1. tools/gpu_check (every CUDA op against the CPU backend, incl. 512-wide heads);
#   2. the tiny model on CUDA against the CPU: latents after 3 steps (tests/pipeline);
#   3. random full-size opensora-v1.2 weights (make-weights), then a 720p x 51-frame
#      generation on cuda:0 with per-phase timings and the peak GPU memory;
#   4. T5 v1.1 XXL hidden states against transformers' T5EncoderModel on those weights.
# Writes $OUT/models_gpu.json (and logs); at most 8 files come back.
set -euo pipefail
cd "$(dirname "$0")/.."
GPU_BUILD_TESTS=ON source bench/gpu_build.sh ditserve gpu_check models_tests pipeline_tests
commit=$(cat .scratch/commit 2>/dev/null || echo unknown)
weights=/tmp/opensora-random
results="$OUT/models_gpu.log"
: > "$results"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee -a "$results"

build-gpu/tools/gpu_check --json "$OUT/gpu_check.json" > "$OUT/gpu_check.txt" 2>&1 || true
tail -1 "$OUT/gpu_check.txt" | tee -a "$results"
build-gpu/tests/pipeline_tests --gtest_filter='CudaPipeline*' 2>&1 | grep -E "rel. error|OK|FAILED|Skipped" | tee -a "$results" || true

start=$SECONDS
build-gpu/src/cli/ditserve make-weights opensora-v1.2 "$weights" --dtype bf16 > /dev/null
echo "make-weights opensora-v1.2 bf16: $((SECONDS - start)) s, $(du -sh $weights | cut -f1)" | tee -a "$results"

nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > /tmp/gpu_mem.csv &
monitor=$!
build-gpu/src/cli/ditserve generate --model opensora-v1.2 --weights "$weights" \
  --prompt "a red fox runs through fresh snow in a pine forest" --frames 51 --size 1280x720 \
  --steps 30 --seed 42 --device cuda:0 -o /tmp/fox-720p.y4m 2>&1 | tee -a "$results"
kill $monitor
echo "peak GPU memory used: $(sort -n /tmp/gpu_mem.csv | tail -1) MiB" | tee -a "$results"
ls -la /tmp/fox-720p.y4m | tee -a "$results"

python3 bench/reference/t5_reference.py "$weights/text_encoder" /tmp/t5_ref.safetensors 2>&1 | tail -2 | tee -a "$results"
DITSERVE_T5_REFERENCE=/tmp/t5_ref.safetensors build-gpu/tests/models_tests \
  --gtest_filter='T5Reference*' 2>&1 | grep -E "relative error|OK|FAILED" | tee -a "$results" || true

python3 bench/models_summary.py "$results" "$OUT/gpu_check.json" --commit "$commit" \
  --command "bench/gpu_models.sh" --out "$OUT/models_gpu.json"
