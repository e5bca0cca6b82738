#!/usr/bin/env bash
# Runs on a lent GPU machine (issue 5): one denoising step of STDiT3-XL/2 at every row of
# the issue's table, a VAE decode of 720p x 51 frames and a T5-XXL encode of 300 tokens,
# each timed in ditserve (`ditserve bench step`) and in eager PyTorch
# (bench/reference/step_reference.py) in the same run, on the same GPU; the DiT on the
# same weights and inputs, with the relative error of the outputs.
# The DiT runs twice: as shipped (the short temporal-attention and fused q/k-norm+RoPE
# kernels on) and with DITSERVE_SHORT_KERNELS=0 (cuDNN attention, separate norm and RoPE),
# so the gain of those kernels is measured in the same run.
#   GPU_STEP_PARTS="check dit vae t5" (default: all) selects parts; GPU_STEP_ROWS the rows;
#   GPU_STEP_GRAPHS=0 skips the run that times the DiT rows replayed from CUDA graphs;
#   GPU_STEP_GENERAL=0 skips the general-kernels run; GPU_STEP_NOTUNE_ROWS="144p,..." also
#   times those rows with GEMM autotuning off (DITSERVE_GEMM_AUTOTUNE=0, $OUT/dit_notune.json).
#   The check part runs tools/gpu_check and bench/ops/op_bench ($OUT/op_bench.json).
# Writes $OUT/step.json (ours + eager + speed-ups), $OUT/step.log and the raw JSONs.
set -uo pipefail
cd "$(dirname "$0")/.."
parts=${GPU_STEP_PARTS:-"check dit vae t5"}
rows=${GPU_STEP_ROWS:-all}
targets="ditserve"
[[ " $parts " == *" check "* ]] && targets="ditserve gpu_check op_bench"
start=$SECONDS
source bench/gpu_build.sh $targets || exit 1
set +e
log="$OUT/step.log"
echo "build: $((SECONDS - start)) s" | tee "$log"
commit=$(cat .scratch/commit 2>/dev/null || echo unknown)
gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1)
echo "gpu: $gpu" | tee -a "$log"
bin=build-gpu/src/cli/ditserve
ref=bench/reference/step_reference.py
export PYTHONUNBUFFERED=1

if [[ " $parts " == *" check "* ]]; then
  build-gpu/tools/gpu_check --json "$OUT/gpu_check.json" \
    > /tmp/gpu_check.txt 2>&1
  tail -1 /tmp/gpu_check.txt | tee -a "$log"
  grep -iE "fail|short|qk_norm" /tmp/gpu_check.txt | head -30 | tee -a "$log"
  timeout 120 build-gpu/bench/op_bench --json "$OUT/op_bench.json" > /tmp/op_bench.txt 2>&1
  grep -iA12 "short" /tmp/op_bench.txt | tee -a "$log"
fi

# The bf16 matmul peak of this GPU, measured now (8192^3, random data, median of 20).
peak=$(python3 bench/matmul_peak.py)
echo "matmul peak (torch bf16 8192^3): $peak TFLOP/s" | tee -a "$log"

ours=() eager=()
if [[ " $parts " == *" dit "* ]]; then
  t=$SECONDS
  $bin bench step --component dit --rows "$rows" --warmup 1 --steps 3 --breakdown \
    --peak-tflops "$peak" --export-weights /tmp/stdit3-w --dump-dir /tmp/stdit3-rows \
    --json "$OUT/dit.json" 2>&1 | tee -a "$log"
  echo "ditserve dit: $((SECONDS - t)) s" | tee -a "$log"; t=$SECONDS
  if [[ ${GPU_STEP_GRAPHS:-1} != 0 ]]; then
    # The same rows replayed from CUDA graphs (no breakdown or dump there); each row's JSON
    # has graph_vs_eager_rel_l2, the graphed output against an eager step's.
    $bin bench step --component dit --rows "$rows" --warmup 1 --steps 5 --cuda-graphs \
      --peak-tflops "$peak" --json "$OUT/dit_graphs.json" 2>&1 | tee -a "$log"
    echo "ditserve dit (CUDA graphs): $((SECONDS - t)) s" | tee -a "$log"; t=$SECONDS
  fi
  if [[ -n ${GPU_STEP_NOTUNE_ROWS:-} ]]; then
    DITSERVE_GEMM_AUTOTUNE=0 $bin bench step --component dit --rows "$GPU_STEP_NOTUNE_ROWS" \
      --warmup 1 --steps 3 --peak-tflops "$peak" --json "$OUT/dit_notune.json" 2>&1 | tee -a "$log"
    echo "ditserve dit (autotune off): $((SECONDS - t)) s" | tee -a "$log"; t=$SECONDS
  fi
  also=()
  if [[ ${GPU_STEP_GENERAL:-1} != 0 ]]; then
    DITSERVE_SHORT_KERNELS=0 $bin bench step --component dit --rows "$rows" --warmup 1 --steps 3 \
      --breakdown --peak-tflops "$peak" --dump-dir /tmp/stdit3-rows-general \
      --json "$OUT/dit_general.json" 2>&1 | tee -a "$log"
    echo "ditserve dit (general kernels): $((SECONDS - t)) s" | tee -a "$log"; t=$SECONDS
    also=(--also general_kernels=/tmp/stdit3-rows-general)
  fi
  python3 $ref dit --weights /tmp/stdit3-w --dump-dir /tmp/stdit3-rows --warmup 1 --steps 3 \
    "${also[@]}" --json /tmp/dit_eager.json 2>&1 | tee -a "$log"
  echo "eager dit: $((SECONDS - t)) s" | tee -a "$log"
  ours+=("$OUT/dit.json"); eager+=(/tmp/dit_eager.json)
  [[ ${GPU_STEP_GRAPHS:-1} != 0 ]] && ours+=("$OUT/dit_graphs.json=cuda_graphs")
  [[ ${GPU_STEP_GENERAL:-1} != 0 ]] && ours+=("$OUT/dit_general.json=general_kernels")
fi
if [[ " $parts " == *" vae "* ]]; then
  t=$SECONDS
  $bin bench step --component vae --warmup 1 --steps 2 --param-specs /tmp/vae_specs.json \
    --json /tmp/vae.json 2>&1 | tee -a "$log"
  python3 $ref vae --param-specs /tmp/vae_specs.json --warmup 1 --steps 2 \
    --json /tmp/vae_eager.json 2>&1 | tee -a "$log"
  echo "vae: $((SECONDS - t)) s" | tee -a "$log"
  ours+=(/tmp/vae.json); eager+=(/tmp/vae_eager.json)
fi
if [[ " $parts " == *" t5 "* ]]; then
  t=$SECONDS
  $bin bench step --component t5 --warmup 1 --steps 3 --peak-tflops "$peak" \
    --json /tmp/t5.json 2>&1 | tee -a "$log"
  python3 $ref t5 --warmup 1 --steps 3 --json /tmp/t5_eager.json 2>&1 | tee -a "$log"
  echo "t5: $((SECONDS - t)) s" | tee -a "$log"
  ours+=(/tmp/t5.json); eager+=(/tmp/t5_eager.json)
fi
python3 bench/step_compare.py --ours "${ours[@]}" --eager "${eager[@]}" --gpu "$gpu" \
  --commit "$commit" --command "GPU_STEP_PARTS='$parts' bench/gpu_step.sh" \
  --out "$OUT/step.json" 2>&1 | tee -a "$log"
cp /tmp/dit_eager.json /tmp/vae_eager.json /tmp/t5_eager.json "$OUT/" 2>/dev/null
echo "total: $((SECONDS - start)) s" | tee -a "$log"
