#!/usr/bin/env bash
# Runs on nvidia-h200-x2 (issue 8): full-size Open-Sora 1.2 (random bf16 weights) served by
# `ditserve serve` on cuda:0,cuda:1 with each policy, a mixed 240p/360p/480p/720p x 51-frame
# trace replayed over HTTP, next to `ditserve simulate` on the same trace and profile
# (bench/serve_vs_sim.py says how). Arguments go to serve_vs_sim.py after the defaults
# below, so they override them (e.g. --profile FILE: a `ditserve profile` of these GPUs,
# such as bench/gpu_parallel.sh's, instead of measuring one here).
#
# The work folder (profile.json, trace.jsonl, measured-<policy>.json, sim-<policy>.json)
# comes back packed as $OUT/serve-vs-sim-h200x2.tar (a call returns at most 8 files), with
# the joined result $OUT/serve-vs-sim-h200x2.json and the log. The run starts from
# bench/results/serve-vs-sim-h200x2/ when that folder exists (it travels with the working
# tree) and skips what is there, so the policies can be split over calls of at most 10
# minutes; after each call, unpack the tar into bench/results/serve-vs-sim-h200x2/:
#   1. bench/gpu_serve_vs_sim.sh --profile P --policies static:1,static:2,static-best
#   2. bench/gpu_serve_vs_sim.sh --profile P --policies ddit,tetriserve,elastic
#   3. (any call with all six reused writes the joined JSON with every policy)
# `bench/gpu_serve_vs_sim.sh prepare` only builds.
# Weights are seeded random ones generated in memory (`--random-weights 0`), so nothing is
# written to disk; the server loads them on each GPU in turn. gpu_build.sh builds without
# FFmpeg, so the server stores videos as Y4M (`serve --video-format`'s default there); the
# comparison only needs their timings.
set -euo pipefail
cd "$(dirname "$0")/.."
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
: "${OUT:?OUT must name the folder whose files come back}"
source bench/gpu_build.sh ditserve
bin=build-gpu/src/cli/ditserve
work=/tmp/serve-vs-sim-h200x2
rm -rf "$work" && mkdir -p "$work"
if [ -d bench/results/serve-vs-sim-h200x2 ]; then cp -r bench/results/serve-vs-sim-h200x2/. "$work/"; fi
pack() { tar -C "$work" -cf "$OUT/serve-vs-sim-h200x2.tar" .; }
trap pack EXIT

commit=$(cat .scratch/commit 2>/dev/null || git rev-parse HEAD 2>/dev/null || echo unknown)
gpus=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -2 | paste -sd, -)
echo "GPUs: $gpus; commit $commit" | tee -a "$OUT/serve_vs_sim.log"
if [ "${1:-}" = prepare ]; then exit 0; fi

# A call may run 600 s in all and the build came first; SVS_DEADLINE_S gives less where
# this script follows other work in the same call.
left=$((${SVS_DEADLINE_S:-580} - SECONDS))
if [ "$left" -lt 60 ]; then echo "only $left s left in this call: run it again" | tee -a "$OUT/serve_vs_sim.log"; exit 1; fi
timeout "$left" python3 bench/serve_vs_sim.py --bin "$bin" --model opensora-v1.2 --random-weights 0 \
  --devices cuda:0,cuda:1 --steps 20 --requests 16 --load 0.6 --slo-scale 2 --seed 1 \
  --hardware-label "$gpus (ditserve profile, random opensora-v1.2 bf16 weights, median of 3)" \
  --server-start-timeout-s 400 --warmup-timeout-s 180 --drain-timeout-s 240 \
  --commit "$commit" --workdir "$work" --out "$OUT/serve-vs-sim-h200x2.json" "$@" 2>&1 | tee -a "$OUT/serve_vs_sim.log"
