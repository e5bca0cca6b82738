#!/usr/bin/env bash
# Reproduces bench/results/sim-*.json and *.svg with `ditserve simulate` (docs/SCHEDULING.md).
# Usage: bench/sim/run.sh [path/to/ditserve]   (default: build/src/cli/ditserve)
# Deterministic: the same binary gives the same files. Takes about a minute on one core.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-build/src/cli/ditserve}
out=bench/results
mkdir -p "$out"
video=profiles/opensora-v1.2-h200-x8.json
image=profiles/flux-image-x8.json
all=static:1,static:2,static:4,static:8,static-best,ddit,tetriserve,elastic

# 1. Open-Sora video, every profiled shape alike (144p..720p at 51 frames, 720p at 102),
#    8 devices, Poisson arrivals, one hour each, SLO = 2x solo latency on one device.
"$bin" simulate --profile $video --policy $all --devices 8 --mix uniform \
  --rate 0.1,0.15,0.2,0.25,0.3,0.35 --duration 3600 --slo-scale 2 --seed 1 \
  --json $out/sim-video-uniform.json --rate-svg $out/sim-video-uniform-vs-rate.svg
"$bin" simulate --profile $video --policy $all --devices 8 --mix uniform \
  --rate 0.25 --duration 3600 --slo-scale 2 --seed 1 --per-shape \
  --json $out/sim-video-uniform-0.25.json --cdf-svg $out/sim-video-uniform-0.25-cdf.svg

# 2. DDiT-like: the 51-frame shapes only (no 102-frame 720p), more load.
"$bin" simulate --profile $video --policy $all --devices 8 --mix 144p,240p,360p,480p,720p \
  --rate 0.2,0.3,0.4,0.5,0.6 --duration 3600 --slo-scale 2 --seed 1 \
  --json $out/sim-video-51f.json --rate-svg $out/sim-video-51f-vs-rate.svg \
  --cdf-svg $out/sim-video-51f-0.6-cdf.svg

# 3. Bursty arrivals (gamma, CV 3) and 10% step-time noise on the uniform video mix.
"$bin" simulate --profile $video --policy $all --devices 8 --mix uniform \
  --arrivals gamma --burstiness 3 --noise 0.1 --rate 0.15,0.25 --duration 3600 \
  --slo-scale 2 --seed 1 --json $out/sim-video-bursty.json

# 4. TetriServe-style images (256^2..2048^2), uniform and skewed mixes, 28 steps,
#    SLO = 1.5x solo latency on one device.
#    Rates up to about the capacity of 8 devices at DoP 1 (0.7 req/s uniform, 0.45 skewed).
for mix in uniform skewed; do
  rates=$([ $mix = uniform ] && echo 0.2,0.3,0.4,0.5,0.6 || echo 0.1,0.2,0.3,0.4)
  "$bin" simulate --profile $image --policy $all --devices 8 --mix $mix --steps 28 \
    --rate $rates --duration 3600 --slo-scale 1.5 --seed 1 \
    --json $out/sim-image-$mix.json --rate-svg $out/sim-image-$mix-vs-rate.svg
done

# 5. Trace replay: a bursty workload written as JSONL, then replayed as given.
"$bin" simulate --profile $video --policy static:1 --devices 8 --mix uniform --arrivals gamma \
  --rate 0.2 --count 300 --seed 7 --write-trace $out/sim-sample-trace.jsonl > /dev/null
"$bin" simulate --profile $video --policy $all --devices 8 --trace $out/sim-sample-trace.jsonl \
  --json $out/sim-trace-replay.json --cdf-svg $out/sim-trace-replay-cdf.svg

# 6. Scale: 10 000 requests on 128 devices (the time is printed by `time`).
for p in ddit tetriserve elastic; do
  /usr/bin/time -f "$p: %e s wall, %M KiB" "$bin" simulate --profile $video --policy $p \
    --devices 128 --mix uniform --rate 4.5 --count 10000 --seed 1 | tail -1
done

# 7. Mixed Open-Sora + Wan 2.1 traffic on one 8-GPU cluster. The Wan shapes' costs are
#    ESTIMATES: FLOP counts at the throughputs measured for Wan 1.3B at 480p on one H100
#    (profiles/opensora-wan2.1-h200-x8-estimated.json, bench/sim/make_wan_profiles.py). Open-Sora 144p..720p x 51f at 30
#    steps, Wan 1.3B 480p x 81f (twice as often) and Wan 14B 720p x 81f (a quarter as often)
#    at Wan's 50 steps; two hours of arrivals, SLO = 2x solo latency on one device.
mixed=profiles/opensora-wan2.1-h200-x8-estimated.json
mixed_mix=144p:1,240p:1,360p:1,480p:1,720p:1,wan1.3b-480p:2:50,wan14b-720p:0.25:50
"$bin" simulate --profile $mixed --policy $all --devices 8 --mix $mixed_mix --steps 30 \
  --rate 0.03,0.045,0.06,0.075,0.09 --duration 7200 --slo-scale 2 --seed 1 \
  --json $out/sim-mixed-opensora-wan.json --rate-svg $out/sim-mixed-opensora-wan-vs-rate.svg
"$bin" simulate --profile $mixed --policy $all --devices 8 --mix $mixed_mix --steps 30 \
  --rate 0.06 --duration 7200 --slo-scale 2 --seed 1 --per-shape \
  --json $out/sim-mixed-opensora-wan-0.06.json --cdf-svg $out/sim-mixed-opensora-wan-0.06-cdf.svg

python3 bench/sim/summarise.py $out/sim-video-uniform.json $out/sim-video-51f.json \
  $out/sim-video-bursty.json $out/sim-image-uniform.json $out/sim-image-skewed.json \
  $out/sim-trace-replay.json $out/sim-mixed-opensora-wan.json \
  > $out/sim-summary.md
