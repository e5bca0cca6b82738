#!/usr/bin/env bash
# Runs on a lent GPU machine (issue 10): Wan 2.1 in ditserve beside diffusers /
# transformers (bench/reference/wan_step_reference.py; the diffusers wheel and its missing
# needs are carried in .whl/), in one run on one GPU. Parts (GPU_WAN_PARTS, default all):
#   dit13  one 1.3B denoising step at 480p x 81 frames (batch 2 = both guidance branches):
#          ditserve, then diffusers eager and torch.compile on ditserve's weights and
#          inputs, with the relative error of ditserve's output
#   vae    a Wan VAE decode of 81 frames at 832x480: ditserve and diffusers (f32)
#   t5     a UMT5-XXL encode of 512 tokens: ditserve and transformers (bf16)
#   e2e    `ditserve generate` of a 480p x 81-frame, 50-step 1.3B video on random weights,
#          with its phase timings and the GPU's peak memory
#   dit14  one 14B step at 720p x 81 frames: ditserve, diffusers eager and torch.compile
#          (each on its own random weights: timing only); GPU_WAN_COMPILE14=0 skips
#          torch.compile there (its first call alone takes minutes)
# Writes $OUT/wan.json (wan_compare.py), $OUT/wan.log and the raw JSONs.
set -uo pipefail
cd "$(dirname "$0")/.."
parts=${GPU_WAN_PARTS:-"dit13 vae t5 e2e dit14"}
start=$SECONDS
source bench/gpu_build.sh ditserve || exit 1
set +e
log="$OUT/wan.log"
echo "build: $((SECONDS - start)) s" | tee "$log"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
commit=$(cat .scratch/commit 2>/dev/null || echo unknown)
gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1)
echo "gpu: $gpu" | tee -a "$log"
bin=build-gpu/src/cli/ditserve
ref=bench/reference/wan_step_reference.py
peak=$(python3 bench/matmul_peak.py)
echo "matmul peak (torch bf16 8192^3): $peak TFLOP/s" | tee -a "$log"
ours=() theirs=()
has() { [[ " $parts " == *" $1 "* ]]; }

if has dit13; then
  t=$SECONDS
  $bin bench step --model wan2.1-t2v-1.3b --component dit --rows 480p-81f --warmup 1 --steps 3 \
    --breakdown --peak-tflops "$peak" --export-weights /tmp/wan13-w --dump-dir /tmp/wan13-rows \
    --json "$OUT/dit13.json" 2>&1 | tee -a "$log"
  python3 $ref dit --config-from "$OUT/dit13.json" --weights /tmp/wan13-w --dump-dir /tmp/wan13-rows \
    --compile --warmup 1 --steps 3 --json "$OUT/dit13_ref.json" 2>&1 | tail -20 | tee -a "$log"
  echo "dit13: $((SECONDS - t)) s" | tee -a "$log"
  ours+=("$OUT/dit13.json"); theirs+=("$OUT/dit13_ref.json")
fi
if has vae; then
  t=$SECONDS
  $bin bench step --model wan2.1-t2v-1.3b --component vae --frames 81 --size 832x480 --warmup 1 \
    --steps 2 --json /tmp/vae.json 2>&1 | tee -a "$log"
  python3 $ref vae --frames 81 --size 832x480 --warmup 1 --steps 2 --json /tmp/vae_ref.json 2>&1 \
    | tail -5 | tee -a "$log"
  echo "vae: $((SECONDS - t)) s" | tee -a "$log"
  ours+=(/tmp/vae.json); theirs+=(/tmp/vae_ref.json)
fi
if has t5; then
  t=$SECONDS
  $bin bench step --model wan2.1-t2v-1.3b --component t5 --warmup 1 --steps 3 --peak-tflops "$peak" \
    --json /tmp/t5.json 2>&1 | tee -a "$log"
  python3 $ref umt5 --tokens 512 --warmup 1 --steps 3 --json /tmp/t5_ref.json 2>&1 | tail -5 | tee -a "$log"
  echo "t5: $((SECONDS - t)) s" | tee -a "$log"
  ours+=(/tmp/t5.json); theirs+=(/tmp/t5_ref.json)
fi
if has e2e; then
  t=$SECONDS
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > /tmp/gpu_mem.csv &
  monitor=$!
  $bin generate --model wan2.1-t2v-1.3b --random-weights 0 --device cuda:0 \
    --prompt "a red fox runs through fresh snow in a pine forest" -o /tmp/wan-480p.y4m 2>&1 \
    | tee /tmp/e2e.txt | tee -a "$log"
  kill $monitor
  echo "peak GPU memory used: $(sort -n /tmp/gpu_mem.csv | tail -1) MiB" | tee -a "$log" /tmp/e2e.txt
  echo "e2e: $((SECONDS - t)) s" | tee -a "$log"
fi
if has dit14; then
  t=$SECONDS
  steps14=${GPU_WAN_STEPS14:-2}
  $bin bench step --model wan2.1-t2v-14b --component dit --rows 720p-81f --warmup 1 --steps $steps14 \
    --peak-tflops "$peak" --json "$OUT/dit14.json" 2>&1 | tee -a "$log"
  compile14=--compile
  [[ ${GPU_WAN_COMPILE14:-1} == 0 ]] && compile14=
  python3 $ref dit --config-from "$OUT/dit14.json" $compile14 --warmup 1 --steps $steps14 \
    --json "$OUT/dit14_ref.json" 2>&1 | tail -20 | tee -a "$log"
  echo "dit14: $((SECONDS - t)) s" | tee -a "$log"
  ours+=("$OUT/dit14.json"); theirs+=("$OUT/dit14_ref.json")
fi
python3 bench/wan_compare.py --ours "${ours[@]}" --theirs "${theirs[@]}" \
  --e2e /tmp/e2e.txt --commit "$commit" --gpu "$gpu" --peak "$peak" \
  --command "GPU_WAN_PARTS='$parts' bench/gpu_wan.sh" --out "$OUT/wan.json" 2>&1 | tee -a "$log"
echo "total: $((SECONDS - start)) s" | tee -a "$log"
