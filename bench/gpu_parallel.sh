#!/usr/bin/env bash
# Runs on a lent machine with 2 GPUs (nvidia-h200-x2; issue 6): `ditserve profile` of
# Open-Sora 1.2 (STDiT3-XL/2, frame/position sequence parallel) at every resolution of the
# issue's table and of Wan 2.1 1.3B (Ulysses) at 832x480 x 81, each at DoP 1 and 2 on
# cuda:0,cuda:1 with seeded random weights (timings only): step, VAE decode per DoP,
# encode, and the cost of moving a request between the two GPUs. parallel_compare.py sets
# the step speed-ups beside the issue's PyTorch + NCCL figures -> $OUT/parallel.json.
#   GPU_PARALLEL_PARTS   "opensora wan" (default); "build" only builds (a cold build-gpu
#                        takes minutes; it is kept between calls while the machine is warm)
#   GPU_PARALLEL_OPENSORA_SHAPES  default 720p:51,720p:102,864x480:51,640x368:51,432x240:51,144p:51
#                        (720p first: the target is 720p x 51; 102 frames -> 30 latent; 480p,
#                        360p and 240p at the sizes they run at, which serve_vs_sim.py's mix
#                        uses, so its --profile can be this run's profile-opensora.json)
#   GPU_PARALLEL_WAN_SHAPES       default 832x480:81
#   GPU_PARALLEL_BUDGET_S per part (default 420 Open-Sora, 240 Wan), and
#   GPU_PARALLEL_DEADLINE_S (default 570) for the whole script: each part gets at most what
#                        is left, so one 600 s call ends with parallel.json written. A part
#                        cut off writes no profile JSON, but the shapes it finished are read
#                        from its log; run the rest in another call with the shapes variables
#                        and join the calls' files with parallel_compare.py --run LOG JSON ...
#   PARALLEL_DRY_RUN=1   the same pipeline on cpu:0,cpu:1 with tiny and tiny-wan at small
#                        shapes, without gpu_build.sh: PARALLEL_BUILD_DIR names a build
#                        directory with src/cli/ditserve; $OUT defaults to a new temp dir.
# Writes to $OUT: parallel.json, parallel.log, profile-{opensora,wan}.{json,log}.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
start=$SECONDS
parts=${GPU_PARALLEL_PARTS:-"opensora wan"}
deadline=${GPU_PARALLEL_DEADLINE_S:-570}
dry=${PARALLEL_DRY_RUN:-0}
has() { [[ " $parts " == *" $1 "* ]]; }

if [[ $dry == 1 ]]; then
  build_dir=${PARALLEL_BUILD_DIR:?PARALLEL_DRY_RUN=1 needs a build directory with src/cli/ditserve}
  bin=$build_dir/src/cli/ditserve
  [[ -x $bin ]] || { echo "gpu_parallel.sh: no $bin (ninja -C $build_dir ditserve)" >&2; exit 1; }
  : "${OUT:=$(mktemp -d /tmp/gpu-parallel-dry.XXXXXX)}"
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
  devices=cpu:0,cpu:1
  opensora_model=tiny wan_model=tiny-wan reference_model=tiny
  opensora_shapes=${GPU_PARALLEL_OPENSORA_SHAPES:-144p:51,32x32:5}
  wan_shapes=${GPU_PARALLEL_WAN_SHAPES:-32x32:5}
  timing=(--steps-timed 1 --warmup 0)
  gpu="CPU dry run: $(nproc) cores, devices $devices"
  hardware=$devices
  note="PARALLEL_DRY_RUN=1: tiny models on CPU devices, to exercise the script; tiny is set"
  note+=" beside the issue's figures only to run that code: the numbers are not comparable"
else
  gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
  if (( gpus < 2 )); then
    echo "gpu_parallel.sh: needs at least 2 GPUs (DoP 1 and 2), found ${gpus}" >&2
    exit 1
  fi
  source bench/gpu_build.sh ditserve || exit 1
  set +e
  bin=build-gpu/src/cli/ditserve
  devices=cuda:0,cuda:1
  opensora_model=opensora-v1.2 wan_model=wan2.1-t2v-1.3b reference_model=opensora-v1.2
  opensora_shapes=${GPU_PARALLEL_OPENSORA_SHAPES:-720p:51,720p:102,864x480:51,640x368:51,432x240:51,144p:51}
  wan_shapes=${GPU_PARALLEL_WAN_SHAPES:-832x480:81}
  timing=(--steps-timed 2 --warmup 1)
  gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1)
  gpu="$gpus x $gpu"
  hardware="2x $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1) (cuda:0,cuda:1)"
  note=""
fi
mkdir -p "$OUT"
log="$OUT/parallel.log"
echo "build: $((SECONDS - start)) s" | tee "$log"
echo "gpu: $gpu" | tee -a "$log"
commit=$(cat .scratch/commit 2>/dev/null || git rev-parse HEAD 2>/dev/null || echo unknown)
command="GPU_PARALLEL_PARTS='$parts' bash bench/gpu_parallel.sh"
[[ $dry == 1 ]] && command="PARALLEL_DRY_RUN=1 $command"
runs=()

compare() {
  (( ${#runs[@]} )) || return 0
  python3 bench/parallel_compare.py "${runs[@]}" --reference-model "$reference_model" \
    --commit "$commit" --gpu "$gpu" --command "$command" ${note:+--note "$note"} \
    --out "$OUT/parallel.json" 2>&1 | tee -a "$log"
}

# profile PART MODEL SHAPES BUDGET_S: one `ditserve profile` run within min(budget, time left).
profile() {
  local part=$1 model=$2 shapes=$3 budget=$4 t=$SECONDS
  local left=$((deadline - (SECONDS - start) - 15))
  if (( left < 30 )); then
    echo "$part: skipped, $left s left of GPU_PARALLEL_DEADLINE_S=$deadline" | tee -a "$log"
    return
  fi
  (( budget > left )) && budget=$left
  local plog="$OUT/profile-$part.log" pjson="$OUT/profile-$part.json"
  echo "$part: $model $shapes, budget $budget s" | tee -a "$log"
  timeout -k 10 "$budget" "$bin" profile --model "$model" --random-weights 0 --devices "$devices" \
    --shapes "$shapes" --dop 1,2 "${timing[@]}" --hardware "$hardware" --out "$pjson" \
    > "$plog" 2>&1
  local rc=$?
  cat "$plog" >> "$log"
  tail -3 "$plog"
  if (( rc == 124 || rc == 137 )); then
    echo "$part: cut off after $budget s; the shapes it finished come from its log" | tee -a "$log"
  elif (( rc != 0 )); then
    echo "$part: ditserve profile failed (exit $rc)" | tee -a "$log"
  fi
  echo "$part: $((SECONDS - t)) s" | tee -a "$log"
  runs+=(--run "$plog" "$pjson")
  compare  # after every part, so a call cut short still leaves parallel.json
}

has opensora && profile opensora "$opensora_model" "$opensora_shapes" \
  "${GPU_PARALLEL_BUDGET_S:-420}"
has wan && profile wan "$wan_model" "$wan_shapes" "${GPU_PARALLEL_BUDGET_S:-240}"
echo "total: $((SECONDS - start)) s" | tee -a "$log"
[[ -f $OUT/parallel.json ]] || has build
