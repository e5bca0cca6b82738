#!/usr/bin/env python3
"""Measured serving vs the simulator's prediction, on one trace and one profile (issue 8).

  1. a profile of the model on the devices (`ditserve profile`), or one given (--profile);
  2. a trace (the simulator's JSONL): N requests, Poisson arrivals, shapes from a mix,
     deadlines = --slo-scale x the shape's solo latency in the profile (encode + steps x
     step(DoP 1) + decode(DoP 1), as `ditserve simulate` makes them); or one given (--trace);
  3. per policy: `ditserve serve --policy P --profile PROFILE --frozen-profile` on the
     devices, a few warm-up requests of every shape (not measured), the trace replayed
     over HTTP at its arrival times (POST /v1/videos with deadline_ms, then the job's
     event stream until it ends), the server stopped;
  4. `ditserve simulate` on the same trace, profile, device count and policy;
  5. one JSON: per policy, measured vs simulated mean/p50/p99 latency and SLO attainment
     with their relative differences (target: within 10%), the steps each ran at each DoP,
     the commands, commit, hardware.

The server keeps the profile's figures (`--frozen-profile`, --server-profile frozen), so
its policy decides on the durations the simulator uses, and what still differs comes from
real durations and event timing. Without it (--server-profile refined, what `serve` does
by default) the server refines its profile from the durations it measures, warm-up
requests included, and may run steps at other DoPs than the simulator: on two CPU devices
the tiny model's DoP-2 step is only 4-18% slower than its DoP-1 step, so a few slow DoP-1
steps (a shape's first step on a device, a busy core) make DoP 2 look faster, and
tetriserve and elastic then grow requests to two devices that the simulator keeps on one
(docs/SCHEDULING.md, "Serving vs the simulator"). `step_ms_by_dop` gives the median step
the server measured, per shape and DoP, beside the profile's.

    # CPU dry run (tiny model; about 10 s per policy on 2 cores)
    python3 bench/serve_vs_sim.py --bin build/src/cli/ditserve --model tiny \\
        --devices cpu:0,cpu:1 --requests 20 --out /tmp/serve-vs-sim.json
    # GPU: bench/gpu_serve_vs_sim.sh (full-size Open-Sora 1.2 on two H200s)

Latency is client-side: from the start of the POST to the job's terminal event (the
simulator's arrival -> completion). The server writes the MP4 after the decode's devices
are released, which the simulator does not model, so `latency_to_decoded_s` (POST ->
the decoding event + the server's decode_s) is compared too ("comparison_to_decoded").
Percentiles are nearest-rank as the simulator's; SLO attainment counts failed or refused
requests as misses, as the simulator counts rejected ones.

Everything it makes lives in --workdir (profile.json, trace.jsonl, one JSON per policy
measured and simulated); a later call with the same --workdir reuses the profile and trace
and skips policies already measured (--redo measures them again), so the policies can be
run over several calls. Every child process has a time limit and every server is stopped
on any exit."""

import argparse
import atexit
import hashlib
import http.client
import json
import math
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

# Shapes by model: name=WIDTHxHEIGHT:FRAMES[*weight]. Sizes are what the model accepts
# (multiples of 16 for Open-Sora: Open-Sora's 426x240 is served as 432x240, 640x360 as
# 640x368, 854x480 as 864x480); the profile is measured at exactly these sizes so the
# server's scheduler finds them (it matches by size) and the simulator by name.
DEFAULT_MIX = {
    "opensora-v1.2": "240p=432x240:51,360p=640x368:51,480p=864x480:51,720p=1280x720:51",
    "tiny": "64x64=64x64:5,96x96=96x96:9,128x128=128x128:9",
}
DEFAULT_POLICIES = "static:1,static:2,static-best,ddit,tetriserve,elastic"
PROMPTS = [
    "a red fox runs through fresh snow in a pine forest",
    "a red paper boat drifts down a rain-filled street at dusk",
    "waves break over black volcanic rocks under a grey sky",
    "a hot air balloon rises over a valley at sunrise",
]

children = []  # running servers, stopped on any exit


def log(*args):
    print(time.strftime("%H:%M:%S"), *args, file=sys.stderr, flush=True)


def stop_children():
    for proc in list(children):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        children.remove(proc)


def on_signal(sig, _frame):
    stop_children()
    sys.exit(128 + sig)


def git(*args):
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True,
                              timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def hardware(devices):
    gpus = None
    if shutil.which("nvidia-smi") and any(d.startswith("cuda") for d in devices):
        try:
            gpus = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                                   "--format=csv,noheader"], capture_output=True, text=True,
                                  timeout=30).stdout.strip().splitlines()
        except (OSError, subprocess.SubprocessError):
            gpus = None
    cpu = None
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), None)
    except OSError:
        pass
    return {"devices": devices, "gpus": gpus, "cpu": cpu, "cpus": os.cpu_count(),
            "platform": platform.platform()}


def percentile(sorted_values, q):
    """Nearest rank, as sim/report.cc: the ceil(q n)-th smallest."""
    if not sorted_values:
        return None
    rank = math.ceil(q * len(sorted_values))
    return sorted_values[min(len(sorted_values) - 1, max(rank, 1) - 1)]


def stats(latencies, requests, met):
    lat = sorted(latencies)
    return {"requests": requests, "completed": len(lat),
            "mean_s": sum(lat) / len(lat) if lat else None,
            "p50_s": percentile(lat, 0.50), "p90_s": percentile(lat, 0.90),
            "p99_s": percentile(lat, 0.99), "max_s": lat[-1] if lat else None,
            "slo_attainment": met / requests if requests else None}


def parse_mix(text):
    shapes = []
    for item in filter(None, text.split(",")):
        name, _, rest = item.partition("=")
        rest, _, weight = rest.partition("*")
        size, _, frames = rest.partition(":")
        w, _, h = size.partition("x")
        try:
            shapes.append({"name": name, "width": int(w), "height": int(h),
                           "frames": int(frames or 1), "weight": float(weight or 1)})
        except ValueError:
            sys.exit(f"--mix: expected NAME=WIDTHxHEIGHT:FRAMES[*WEIGHT], got '{item}'")
        if not name or shapes[-1]["weight"] <= 0:
            sys.exit(f"--mix: expected NAME=WIDTHxHEIGHT:FRAMES[*WEIGHT] (weight > 0), got '{item}'")
    if not shapes or len({s["name"] for s in shapes}) != len(shapes):
        sys.exit("--mix: no shape, or a name given twice")
    return shapes


def run_checked(cmd, timeout_s, what, env=None):
    """Runs cmd to the end (killed past timeout_s, or when this script is stopped)."""
    log(what + ":", " ".join(cmd))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    children.append(proc)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        stop_children()
        sys.exit(f"{what}: no result within {timeout_s} s: {' '.join(cmd)}")
    children.remove(proc)
    if proc.returncode != 0:
        sys.exit(f"{what} failed ({proc.returncode}): {' '.join(cmd)}\n{out[-3000:]}{err[-3000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def measure_profile(args, shapes, path, env):
    """`ditserve profile` at the mix's exact sizes, then the shapes renamed as the mix names
    them (the server matches a request by size, the simulator a trace line by name)."""
    cmd = [args.bin, "profile", "--model", args.model, "--devices", args.devices,
           "--shapes", ",".join(f"{s['width']}x{s['height']}:{s['frames']}" for s in shapes),
           "--dop", args.profile_dop, "--steps-timed", str(args.profile_steps_timed),
           "--warmup", str(args.profile_warmup), "--out", path + ".raw"]
    if args.weights:
        cmd += ["--weights", args.weights]
    if args.random_weights is not None:
        cmd += ["--random-weights", str(args.random_weights)]
    if args.hardware_label:
        cmd += ["--hardware", args.hardware_label]
    r = run_checked(cmd, args.profile_timeout_s, "profile", env)
    adopt_profile(path + ".raw", shapes, path, " ".join(cmd))
    os.remove(path + ".raw")
    return r.stderr


def adopt_profile(source, shapes, path, measured_by):
    """The profile at `source` written to `path` with its shapes named as the mix names them
    (the server matches a request by size, the simulator a trace line by name)."""
    with open(source) as f:
        profile = json.load(f)
    for s in profile["shapes"]:
        match = [m for m in shapes if (m["width"], m["height"], m["frames"]) ==
                 (s["width"], s["height"], s["frames"])]
        if match:
            s["name"] = match[0]["name"]
    profile["measured_by"] = measured_by
    with open(path, "w") as f:
        json.dump(profile, f, indent=2)
        f.write("\n")


def solo_s(shape, steps):
    """The simulator's solo latency on one device: encode + steps x step(1) + decode(1)."""
    return (shape["encode_ms"] + steps * shape["step_ms"]["1"] + shape["decode_ms"]["1"]) / 1000


def write_trace(args, shapes, profile, path):
    by_name = {s["name"]: s for s in profile["shapes"]}
    missing = [s["name"] for s in shapes if s["name"] not in by_name]
    if missing:
        sys.exit(f"--mix: shapes {missing} are not in the profile (it has {sorted(by_name)})")
    weights = [s["weight"] for s in shapes]
    mean_service = sum(w * solo_s(by_name[s["name"]], args.steps) for w, s in zip(weights, shapes)) / sum(weights)
    rate = args.rate or args.load * len(args.devices.split(",")) / mean_service
    rng = random.Random(args.seed)
    t = 0.0
    with open(path, "w") as f:
        for i in range(args.requests):
            t += rng.expovariate(rate) if i > 0 else 0.0
            s = rng.choices(shapes, weights)[0]
            deadline = args.slo_scale * solo_s(by_name[s["name"]], args.steps)
            f.write(json.dumps({"id": i, "arrival_s": round(t, 6), "shape": s["name"],
                                "steps": args.steps, "deadline_s": round(deadline, 6)}) + "\n")
    return {"rate_rps": rate, "mean_solo_s": mean_service, "load": rate * mean_service / len(args.devices.split(","))}


def read_trace(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def start_server(args, policy, profile_path, data_dir, env, n_requests):
    cmd = [args.bin, "serve", "--port", "0", "--devices", args.devices, "--models", args.model,
           "--policy", policy, "--profile", profile_path, "--data-dir", data_dir,
           "--max-queue", str(max(64, n_requests + 1)), "--timeout", "60"]
    if args.server_profile == "frozen":
        cmd += ["--frozen-profile"]
    if args.weights:
        cmd += ["--weights", f"{args.model}={args.weights}"]
    if args.random_weights is not None:
        cmd += ["--random-weights", str(args.random_weights)]
    log("serve:", " ".join(cmd))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    children.append(proc)
    output = []
    ready = threading.Event()
    url = {}

    def reader():  # the whole output, kept for the report; the URL once it is printed
        for line in proc.stdout:
            output.append(line)
            if "listening on http://" in line and not ready.is_set():
                url["value"] = "http://" + line.split("http://")[1].split(" ")[0]
                ready.set()
        ready.set()

    threading.Thread(target=reader, daemon=True).start()
    if not ready.wait(args.server_start_timeout_s) or "value" not in url:
        stop_children()
        sys.exit(f"serve ({policy}) did not start listening within {args.server_start_timeout_s} s:\n"
                 + "".join(output[-40:]))
    return proc, url["value"], cmd, output


class Job:
    def __init__(self, line):
        self.line = line
        self.id = None
        self.submit_s = None      # since the replay's start
        self.lag_s = None         # submit_s - arrival_s
        self.events = []          # (seconds since the replay's start, event type, object)
        self.status = None
        self.error = None
        self.observed_by = None   # the event stream, or polls

    def finished_s(self):
        return self.events[-1][0] if self.status in ("completed", "failed", "cancelled") else None


def warm_up(url, shapes, args, model):
    """Before the trace's clock starts: --warmup-per-shape requests of every shape at once
    (--warmup-steps steps each), waited for, so first-use costs (a GPU's kernel loading,
    allocator growth) stay out of the measurement. Their durations also reach the server's
    online profile, as any request's would. Returns (seconds, statuses)."""
    host = urllib.parse.urlparse(url)
    ids = []
    start = time.monotonic()
    for s in shapes:
        for k in range(args.warmup_per_shape):
            body = {"model": model, "prompt": PROMPTS[k % len(PROMPTS)], "size": f"{s['width']}x{s['height']}",
                    "num_frames": s["frames"], "steps": args.warmup_steps, "seed": 1000 + k}
            c = http.client.HTTPConnection(host.hostname, host.port, timeout=30)
            c.request("POST", "/v1/videos", body=json.dumps(body),
                      headers={"Content-Type": "application/json", "Connection": "close"})
            r = c.getresponse()
            data = r.read()
            c.close()
            if r.status != 200:
                return time.monotonic() - start, [f"refused: HTTP {r.status}: {data[:300].decode(errors='replace')}"]
            ids.append(json.loads(data)["id"])
    statuses = {}
    give_up = start + args.warmup_timeout_s
    while len(statuses) < len(ids) and time.monotonic() < give_up:
        for vid in ids:
            if vid in statuses:
                continue
            c = http.client.HTTPConnection(host.hostname, host.port, timeout=30)
            c.request("GET", f"/v1/videos/{vid}", headers={"Connection": "close"})
            obj = json.loads(c.getresponse().read())
            c.close()
            if obj["status"] in ("completed", "failed", "cancelled"):
                statuses[vid] = obj["status"] + ("" if obj["status"] == "completed" else f": {obj.get('error')}")
        time.sleep(0.1)
    return time.monotonic() - start, [statuses.get(vid, "unfinished") for vid in ids]


def replay(url, trace, shapes, args, model):
    """Each trace line POSTed at its arrival time, then its event stream read to the end
    (or, past --max-streams open streams, its status polled until it ends)."""
    host = urllib.parse.urlparse(url)
    sizes = {s["name"]: s for s in shapes}
    jobs = [Job(line) for line in trace]
    t0 = time.monotonic() + 0.5
    give_up = t0 + trace[-1]["arrival_s"] + args.drain_timeout_s

    def now():
        return time.monotonic() - t0

    # Each event stream holds one of the server's connection threads (64) while its job
    # runs; past --max-streams open at once, a job is polled instead (short connections).
    streams = threading.BoundedSemaphore(args.max_streams)

    def follow_events(conn, job):
        # The stream replays the job's events from its first, so none is missed; a
        # keep-alive comment comes every 10 s, so a 30 s read timeout means trouble.
        job.observed_by = "events"
        conn.request("GET", f"/v1/videos/{job.id}/events", headers={"Accept": "text/event-stream"})
        r = conn.getresponse()
        if r.status != 200:
            job.status, job.error = "failed", f"events: HTTP {r.status}"
            return
        event_type = None
        while time.monotonic() < give_up:
            raw = r.readline()
            if not raw:
                break
            text = raw.decode().rstrip("\n")
            if text.startswith("event: "):
                event_type = text[7:]
            elif text.startswith("data: "):
                obj = json.loads(text[6:])
                job.events.append((now(), event_type, obj))
                if obj["status"] in ("completed", "failed", "cancelled"):
                    job.status = obj["status"]
                    job.error = obj.get("error")
                    break
        conn.close()

    def poll(job):
        job.observed_by = f"polls every {args.poll_ms:g} ms"
        while time.monotonic() < give_up:
            c = http.client.HTTPConnection(host.hostname, host.port, timeout=30)
            c.request("GET", f"/v1/videos/{job.id}", headers={"Connection": "close"})
            r = c.getresponse()
            obj = json.loads(r.read())
            c.close()
            if r.status == 200 and obj["status"] in ("completed", "failed", "cancelled"):
                job.events.append((now(), "poll", obj))
                job.status, job.error = obj["status"], obj.get("error")
                return
            time.sleep(args.poll_ms / 1000)

    def one(job):
        line = job.line
        shape = sizes[line["shape"]]
        body = {"model": model, "prompt": PROMPTS[line["id"] % len(PROMPTS)],
                "size": f"{shape['width']}x{shape['height']}", "num_frames": shape["frames"],
                "steps": line["steps"], "seed": line["id"],
                "deadline_ms": max(1, round(line["deadline_s"] * 1000))}
        delay = t0 + line["arrival_s"] - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        job.submit_s = now()
        job.lag_s = job.submit_s - line["arrival_s"]
        try:
            conn = http.client.HTTPConnection(host.hostname, host.port, timeout=30)
            conn.request("POST", "/v1/videos", body=json.dumps(body),
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            data = r.read()
            if r.status != 200:
                job.status, job.error = "refused", f"HTTP {r.status}: {data[:300].decode(errors='replace')}"
                return
            job.id = json.loads(data)["id"]
            if streams.acquire(blocking=False):
                try:
                    follow_events(conn, job)
                finally:
                    streams.release()
            else:
                conn.close()
                poll(job)
            if job.status is None:
                job.status, job.error = "unfinished", "no terminal event before the time limit"
        except (OSError, http.client.HTTPException, ValueError) as e:
            job.status, job.error = job.status or "error", f"{type(e).__name__}: {e}"

    threads = [threading.Thread(target=one, args=(job,), daemon=True) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, give_up - time.monotonic()) + 35)
    return jobs


def duration_ratios(rows, profile):
    """Medians over completed jobs of what the server measured / what the profile says: a
    step (jobs whose steps all ran at one DoP), the decode and the encode. Near 1: the
    simulator had the right durations, and a latency gap is in the scheduling; far from 1:
    the durations themselves differ (contention, warm-up, a stale profile)."""
    by_name = {s["name"]: s for s in profile["shapes"]}
    step, decode, encode = [], [], []
    for r in rows:
        if r.get("status") != "completed" or r["shape"] not in by_name:
            continue
        shape, t = by_name[r["shape"]], r["timings"]
        steps = r.get("steps") or 0
        if len(r["step_dops"]) == 1 and str(r["step_dops"][0]) in shape["step_ms"] and steps:
            step.append(t["denoise_s"] * 1000 / steps / shape["step_ms"][str(r["step_dops"][0])])
        if str(r.get("decode_dop")) in shape["decode_ms"]:
            decode.append(t["decode_s"] * 1000 / shape["decode_ms"][str(r["decode_dop"])])
        encode.append(t["encode_s"] * 1000 / shape["encode_ms"])
    med = lambda v: percentile(sorted(v), 0.5)
    return {"step": med(step), "decode": med(decode), "encode": med(encode), "jobs": len(decode)}


def step_ms_by_dop(jobs, profile):
    """Per shape and DoP: the median duration of the server's steps (the difference of
    denoise_s between consecutive step events; a step that first moved the state includes
    the move) beside the profile's step_ms. These are the durations a refining server
    learns from (its warm-up requests' too, not counted here)."""
    by_name = {s["name"]: s for s in profile["shapes"]}
    seen = {}
    for j in jobs:
        if j.status != "completed":
            continue
        before = 0.0
        for _, kind, o in j.events:
            if kind != "step" or not o.get("dop"):
                continue
            now = o["timings"]["denoise_s"]
            seen.setdefault(j.line["shape"], {}).setdefault(str(o["dop"]), []).append((now - before) * 1000)
            before = now
    out = {}
    for shape, dops in sorted(seen.items()):
        for dop, ms in sorted(dops.items()):
            out.setdefault(shape, {})[dop] = {
                "measured_median_ms": percentile(sorted(ms), 0.5), "steps": len(ms),
                "profile_ms": by_name.get(shape, {}).get("step_ms", {}).get(dop)}
    return out


def summarise_jobs(jobs):
    latencies, decoded, met, per_shape, rows, dop_steps = [], [], 0, {}, [], {}
    lags = [j.lag_s for j in jobs if j.lag_s is not None]
    for j in jobs:
        line = j.line
        row = {"id": line["id"], "shape": line["shape"], "steps": line["steps"], "arrival_s": line["arrival_s"],
               "deadline_s": line["deadline_s"], "status": j.status, "lag_s": j.lag_s,
               "observed_by": j.observed_by}
        if j.status == "completed":
            latency = j.finished_s() - j.submit_s
            final = j.events[-1][2]
            decoding = [t for t, _, o in j.events if o.get("phase") == "decoding"]
            to_decoded = (decoding[0] + final["timings"]["decode_s"] - j.submit_s) if decoding else None
            dops = sorted({o["dop"] for _, kind, o in j.events if kind == "step" and o.get("dop")})
            for _, kind, o in j.events:
                if kind == "step" and o.get("dop"):
                    dop_steps[str(o["dop"])] = dop_steps.get(str(o["dop"]), 0) + 1
            row.update({"latency_s": latency, "latency_to_decoded_s": to_decoded,
                        "met_deadline": latency <= line["deadline_s"], "step_dops": dops,
                        "decode_dop": final.get("decode_dop"), "timings": final["timings"]})
            latencies.append(latency)
            if to_decoded is not None:
                decoded.append(to_decoded)
            met += latency <= line["deadline_s"]
            per_shape.setdefault(line["shape"], []).append(latency)
        else:
            row["error"] = j.error
        rows.append(row)
    n = len(jobs)
    return {
        "latency": stats(latencies, n, met),
        "latency_to_decoded": stats(decoded, n, sum(1 for r in rows if r.get("latency_to_decoded_s") is not None
                                                   and r["latency_to_decoded_s"] <= r["deadline_s"])),
        "per_shape_mean_s": {k: sum(v) / len(v) for k, v in sorted(per_shape.items())},
        "dop_steps": dict(sorted(dop_steps.items())),  # step events by the DoP that ran them
        "submit_lag_s": {"max": max(lags) if lags else None, "mean": sum(lags) / len(lags) if lags else None},
        "not_completed": [r for r in rows if r["status"] != "completed"][:20],
        "jobs": rows,
    }


def measure_policy(args, policy, profile_path, trace, shapes, env):
    data_dir = tempfile.mkdtemp(prefix="ditserve_svs_")
    try:
        proc, url, cmd, output = start_server(args, policy, profile_path, data_dir, env, len(trace))
        warmup_s, warmup = warm_up(url, shapes, args, args.model) if args.warmup_per_shape > 0 else (0.0, [])
        if any(not w.startswith("completed") for w in warmup):
            stop_children()
            sys.exit(f"serve ({policy}): the warm-up requests did not all complete: {warmup}")
        log(f"{policy}: warm-up of {len(warmup)} requests took {warmup_s:.1f} s")
        started = time.time()
        jobs = replay(url, trace, shapes, args, args.model)
        wall = time.time() - started
        metrics = None
        try:
            c = http.client.HTTPConnection(urllib.parse.urlparse(url).hostname, urllib.parse.urlparse(url).port, timeout=10)
            c.request("GET", "/metrics")
            metrics = [l for l in c.getresponse().read().decode().splitlines()
                       if l.startswith(("ditserve_slo", "ditserve_device_busy", "ditserve_requests{"))]
        except (OSError, http.client.HTTPException):
            pass
        stop_children()
        if all(j.status == "refused" for j in jobs):
            sys.exit(f"serve ({policy}) refused every request; the first: {jobs[0].error}")
        result = summarise_jobs(jobs)
        with open(profile_path) as f:
            profile = json.load(f)
        result["duration_vs_profile"] = duration_ratios(result["jobs"], profile)
        result["step_ms_by_dop"] = step_ms_by_dop(jobs, profile)
        result.update({"server_profile": args.server_profile, "server_command": cmd, "replay_wall_s": wall,
                       "warmup": {"requests": len(warmup), "steps": args.warmup_steps, "seconds": warmup_s}, "metrics_excerpt": metrics,
                       "server_output_tail": "".join(output[-15:])})
        return result
    finally:
        stop_children()
        shutil.rmtree(data_dir, ignore_errors=True)


def simulate_policy(args, policy, profile_path, trace_path, workdir):
    out = os.path.join(workdir, "sim-" + policy.replace(":", "_") + ".json")
    cmd = [args.bin, "simulate", "--profile", profile_path, "--trace", trace_path,
           "--devices", str(len(args.devices.split(","))), "--encoders", "1",
           "--policy", policy, "--slo-scale", str(args.slo_scale), "--json", out]
    r = run_checked(cmd, 300, "simulate")
    with open(out) as f:
        doc = json.load(f)
    res = doc["runs"][0]["results"][0]
    return {"command": " ".join(cmd), "latency": res["latency"], "dop_steps": res["dop_steps"],
            "preemptions": res["preemptions"], "reject_reasons": res["reject_reasons"],
            "per_shape_mean_s": {k: v["mean_s"] for k, v in res["per_shape"].items()},
            "table": r.stdout}


def rel(measured, simulated):
    if measured is None or simulated is None or simulated == 0:
        return None
    return (measured - simulated) / simulated


def compare(measured, simulated, target):
    out = {}
    for key in ("mean_s", "p50_s", "p99_s"):
        m, s = measured[key], simulated[key]
        out[key] = {"measured": m, "simulated": s, "rel_diff": rel(m, s),
                    "within_target": rel(m, s) is not None and abs(rel(m, s)) <= target}
    m, s = measured["slo_attainment"], simulated["slo_attainment"]
    out["slo_attainment"] = {"measured": m, "simulated": s,
                             "abs_diff": None if m is None or s is None else m - s,
                             "rel_diff": rel(m, s),
                             # an attainment of 0 predicted has no relative difference
                             "within_target": m is not None and s is not None and
                             (abs(m - s) <= target if s == 0 else abs(rel(m, s)) <= target)}
    return out


def dop_text(dop_steps):
    return " ".join(f"{k}:{v}" for k, v in sorted(dop_steps.items(), key=lambda kv: int(kv[0]))) or "-"


def same_decisions(measured, simulated):
    """Whether the server ran as many steps at each DoP as the simulator, and why not."""
    m = {k: v for k, v in measured["dop_steps"].items() if v}
    s = {str(k): v for k, v in simulated["dop_steps"].items() if v}
    if m == s:
        return {"same_dop_steps": True, "note": None}
    if measured.get("server_profile", "refined") == "refined":
        why = ("the server refined its profile from the durations it measured (warm-up included; "
               "step_ms_by_dop) and its policy decided on those, the simulator on the profile's; "
               "--server-profile frozen compares like for like")
    else:
        why = ("the server kept the profile's figures, so the DoPs differ through timing alone: real "
               "durations (step_ms_by_dop) move the decision points and the requests each one sees")
    return {"same_dop_steps": False, "note": f"steps by DoP: server {dop_text(m)}, simulator {dop_text(s)}: {why}"}


def table(results, target):
    lines = [f"{'policy':<12} {'mean_s meas/sim (diff)':>26} {'p50_s meas/sim (diff)':>26} "
             f"{'p99_s meas/sim (diff)':>26} {'SLO meas/sim':>14} {'done':>6} {'step/decode vs profile':>23}"
             f"  steps by DoP meas | sim"]

    def cell(c):
        if c["measured"] is None or c["simulated"] is None:
            return f"{'-':>26}"
        d = "" if c["rel_diff"] is None else f"{100 * c['rel_diff']:+.1f}%"
        return f"{c['measured']:>8.2f} /{c['simulated']:>7.2f} ({d:>7})"

    def ratio(measured, key):
        x = measured.get("duration_vs_profile", {}).get(key)
        return "-" if x is None else f"x{x:.2f}"

    for policy, r in results.items():
        c = r["comparison"]
        slo = c["slo_attainment"]
        lines.append(f"{policy:<12} {cell(c['mean_s'])} {cell(c['p50_s'])} {cell(c['p99_s'])} "
                     f"{100 * (slo['measured'] or 0):>5.1f}/{100 * (slo['simulated'] or 0):5.1f}% "
                     f"{r['measured']['latency']['completed']:>3}/{r['measured']['latency']['requests']:<3}"
                     f"{ratio(r['measured'], 'step'):>12}/{ratio(r['measured'], 'decode'):<7}"
                     f"  {dop_text(r['measured']['dop_steps'])} | {dop_text(r['simulated']['dop_steps'])}")
    lines.append(f"(diff = (measured - simulated) / simulated; target within {100 * target:.0f}%; step/decode: "
                 "median measured duration / the profile's)")
    profiles = sorted({r["measured"].get("server_profile", "refined") for r in results.values()})
    lines.append("server profile: " + ", ".join(profiles) + (
        " (the profile's figures as loaded, as the simulator's)" if profiles == ["frozen"] else
        " (refined from measured durations: the server's policy decides on other durations than the simulator's)"))
    for policy, r in results.items():
        if r["decisions"]["note"]:
            lines.append(f"{policy}: {r['decisions']['note']}")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--bin", default="build/src/cli/ditserve")
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--weights", help="weights directory (ditserve make-weights) for a model without built-in weights")
    ap.add_argument("--random-weights", type=int, default=None,
                    help="seeded random weights generated in memory by profile and serve, instead of --weights")
    ap.add_argument("--devices", default="cpu:0,cpu:1")
    ap.add_argument("--mix", help="NAME=WIDTHxHEIGHT:FRAMES[*WEIGHT],... (default: by model, see DEFAULT_MIX)")
    ap.add_argument("--steps", type=int, default=30, help="denoising steps of every request")
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--rate", type=float, help="arrivals per second (default: from --load)")
    ap.add_argument("--load", type=float, default=0.6,
                    help="offered load when --rate is not given: rate x mean solo latency / devices")
    ap.add_argument("--slo-scale", type=float, default=2.0, help="deadline = this x solo latency on one device")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--policies", default=DEFAULT_POLICIES,
                    help="comma-separated, as serve/simulate --policy; 'none': only the profile and the trace")
    ap.add_argument("--profile", help="a profile JSON to use instead of measuring one (its shapes of the mix's sizes are renamed as the mix names them)")
    ap.add_argument("--trace", help="a trace JSONL to replay instead of generating one")
    ap.add_argument("--profile-dop", default=None, help="DoPs to profile (default: 1..devices, powers of 2)")
    ap.add_argument("--profile-steps-timed", type=int, default=3)
    ap.add_argument("--profile-warmup", type=int, default=1)
    ap.add_argument("--profile-timeout-s", type=int, default=1200)
    ap.add_argument("--hardware-label", help="the profile's hardware field")
    ap.add_argument("--server-start-timeout-s", type=float, default=600, help="loading the model on every device")
    ap.add_argument("--drain-timeout-s", type=float, default=600, help="after the last arrival, before giving up")
    ap.add_argument("--server-profile", choices=("frozen", "refined"), default="frozen",
                    help="frozen: serve --frozen-profile, the server decides on the profile's figures as "
                         "simulate does; refined: serve's default, figures refined from measured durations")
    ap.add_argument("--warmup-per-shape", type=int, default=None,
                    help="warm-up requests of each shape before the trace (default: one per device; 0: none)")
    ap.add_argument("--warmup-steps", type=int, default=2)
    ap.add_argument("--warmup-timeout-s", type=float, default=300)
    ap.add_argument("--max-streams", type=int, default=40,
                    help="event streams open at once (the server serves 64 connections); more jobs are polled")
    ap.add_argument("--poll-ms", type=float, default=50, help="between status calls of a polled job")
    ap.add_argument("--target", type=float, default=0.10, help="relative difference aimed at")
    ap.add_argument("--workdir", help="keeps profile, trace and per-policy results between calls (default: a temporary one)")
    ap.add_argument("--redo", action="store_true", help="measure policies again even if --workdir has them")
    ap.add_argument("--commit", help="the commit to record when this is not a git checkout")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    atexit.register(stop_children)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    args.bin = os.path.abspath(args.bin)
    if not os.access(args.bin, os.X_OK):
        sys.exit(f"--bin: '{args.bin}' is not an executable")
    devices = args.devices.split(",")
    if args.profile_dop is None:
        args.profile_dop = ",".join(str(1 << i) for i in range(len(devices).bit_length()) if 1 << i <= len(devices))
    if args.warmup_per_shape is None:
        args.warmup_per_shape = len(devices)
    shapes = parse_mix(args.mix or DEFAULT_MIX.get(args.model) or sys.exit(f"--mix: no default for {args.model}"))
    env = dict(os.environ)
    if all(d.startswith("cpu") for d in devices):
        env.setdefault("OMP_NUM_THREADS", "1")
        env.setdefault("OMP_WAIT_POLICY", "passive")

    tmp = None
    if args.workdir:
        workdir = os.path.abspath(args.workdir)
        os.makedirs(workdir, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="ditserve_svs_work_")
        workdir = tmp.name
    profile_path = os.path.join(workdir, "profile.json")
    trace_path = os.path.join(workdir, "trace.jsonl")

    profile_log = None
    if args.profile:
        adopt_profile(args.profile, shapes, profile_path, "given: " + args.profile)
    elif not os.path.exists(profile_path):
        profile_log = measure_profile(args, shapes, profile_path, env)
    with open(profile_path) as f:
        profile = json.load(f)
    workload = None
    if args.trace:
        shutil.copyfile(args.trace, trace_path)
    elif not os.path.exists(trace_path):
        workload = write_trace(args, shapes, profile, trace_path)
    trace = read_trace(trace_path)
    names = {s["name"] for s in shapes}
    if any(line["shape"] not in names for line in trace):
        sys.exit(f"trace: shapes {sorted({l['shape'] for l in trace} - names)} are not in the mix")
    log(f"trace: {len(trace)} requests over {trace[-1]['arrival_s']:.1f} s; profile {profile.get('hardware')}")

    results = {}
    for policy in [p for p in args.policies.split(",") if p and p != "none"]:
        key = policy.replace(":", "_")
        measured_path = os.path.join(workdir, "measured-" + key + ".json")
        if os.path.exists(measured_path) and not args.redo:
            with open(measured_path) as f:
                measured = json.load(f)
            if measured.get("trace_sha256") != sha256(trace_path) or measured.get("profile_sha256") != sha256(profile_path):
                sys.exit(f"{measured_path}: measured on another trace or profile; use --redo or another --workdir")
            if measured.get("server_profile", "refined") != args.server_profile:
                sys.exit(f"{measured_path}: measured with --server-profile {measured.get('server_profile', 'refined')}; "
                         "use --redo or another --workdir")
            log(f"{policy}: measured before ({measured_path})")
        else:
            measured = measure_policy(args, policy, profile_path, trace, shapes, env)
            measured.update({"trace_sha256": sha256(trace_path), "profile_sha256": sha256(profile_path),
                             "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
            with open(measured_path, "w") as f:
                json.dump(measured, f, indent=2)
        simulated = simulate_policy(args, policy, profile_path, trace_path, workdir)
        results[policy] = {"measured": measured, "simulated": simulated,
                           "decisions": same_decisions(measured, simulated),
                           "comparison": compare(measured["latency"], simulated["latency"], args.target),
                           "comparison_to_decoded": compare(measured["latency_to_decoded"], simulated["latency"],
                                                            args.target)}
        log(f"{policy}: measured mean {measured['latency']['mean_s']} s, SLO {measured['latency']['slo_attainment']}; "
            f"simulated mean {simulated['latency']['mean_s']:.3f} s, SLO {simulated['latency']['slo_attainment']}")

    text = table(results, args.target)
    doc = {
        "what": "ditserve serve (measured over HTTP) vs ditserve simulate on the same trace, profile, "
                "device count and policy",
        "command": "python3 " + " ".join(sys.argv),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": args.commit or git("rev-parse", "HEAD"),
        "uncommitted_changes": bool(git("status", "--porcelain")),
        "hardware": hardware(devices),
        "model": args.model, "weights": args.weights, "devices": args.devices,
        "server_profile": args.server_profile,
        "workload": {"mix": shapes, "steps": args.steps, "requests": len(trace),
                     "slo_scale": args.slo_scale, "seed": args.seed,
                     "span_s": trace[-1]["arrival_s"], "generated": workload,
                     "trace": trace_path, "trace_sha256": sha256(trace_path)},
        "profile": profile, "profile_sha256": sha256(profile_path), "profile_log": profile_log,
        "target_rel_diff": args.target,
        "summary_table": text.splitlines(),
        "results": results,
    }
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    print(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
