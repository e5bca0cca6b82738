#!/usr/bin/env bash
# Runs on a lent machine with one or more GPUs: bench/comm/comm_bench (group-free
# collectives: new-group vs steady-state all_to_all, group set-up cost, a raw peer copy,
# and a GPU-vs-CPU-devices correctness check of two collectives), writing
# $OUT/comm.json with the command and the commit added.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/gpu_build.sh comm_bench
commit=$(cat .scratch/commit 2>/dev/null || echo unknown)
nvidia-smi --query-gpu=name --format=csv,noheader
nvidia-smi topo -m || true
build-gpu/bench/comm_bench --json /tmp/comm.json --reps 20
python3 - "$commit" <<'PY'
import json, sys
d = json.load(open("/tmp/comm.json"))
d["commit"], d["command"] = sys.argv[1], "bench/gpu_comm.sh"
json.dump(d, open(__import__("os").environ["OUT"] + "/comm.json", "w"), indent=2)
PY
