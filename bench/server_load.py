#!/usr/bin/env python3
"""Load test of `ditserve serve` over loopback: N tiny video requests (16x16, 1 frame,
1 step) from C concurrent clients, each submitting, polling until done and downloading.
Checks that every request completes and that none is lost or duplicated (the job list
holds exactly the submitted ids), and reports the latency of the API calls that do no
generation themselves (submit, status, download, list) with their p99.

    python3 bench/server_load.py --bin build/src/cli/ditserve --out bench/results/server-load-cpu.json

Starts its own server (CPU devices, a temporary data directory) unless --url is given.
Exits non-zero when a check fails."""

import argparse
import concurrent.futures
import http.client
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse


def percentile(values, p):
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def summary(ms):
    return {"count": len(ms), "p50_ms": percentile(ms, 50), "p90_ms": percentile(ms, 90),
            "p99_ms": percentile(ms, 99), "max_ms": max(ms) if ms else None}


def git(*args):
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


class Connection:
    """One keep-alive HTTP/1.1 connection (http.client: far less client CPU per call than
    requests, which matters with 32 client threads on a small machine)."""

    def __init__(self, url):
        u = urllib.parse.urlparse(url)
        self.host, self.port = u.hostname, u.port
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)

    def call(self, method, path, body=None):
        headers = {"Content-Type": "application/json"} if body is not None else {}
        data = json.dumps(body) if body is not None else None
        for attempt in range(2):  # the server closes idle keep-alive connections
            try:
                self.conn.request(method, path, body=data, headers=headers)
                r = self.conn.getresponse()
                return r.status, r.read()
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
                if attempt:
                    raise


def start_server(args, data_dir):
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="passive")
    cmd = [args.bin, "serve", "--port", "0", "--devices", args.devices, "--data-dir", data_dir,
           "--max-queue", str(max(64, args.clients * 2))]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    line = ""
    deadline = time.time() + 120
    while time.time() < deadline and "listening on" not in line:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("server exited before listening")
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    return proc, "http://" + line.split("http://")[1].split(" ")[0], cmd


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default="build/src/cli/ditserve")
    ap.add_argument("--url", help="an already running server (else one is started)")
    ap.add_argument("--devices", default="cpu:0,cpu:1")
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--poll-ms", type=float, default=50, help="between status calls of one client")
    ap.add_argument("--time-limit-s", type=float, default=600)
    ap.add_argument("--out")
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory(prefix="ditserve_load_")
    proc, server_cmd = None, None
    url = args.url
    if not url:
        proc, url, server_cmd = start_server(args, tmp.name)
    latencies = {"submit": [], "status": [], "download": [], "list": []}
    lock = threading.Lock()
    submitted, completed, failures = [], [], []
    next_index = iter(range(args.requests))
    give_up = time.time() + args.time_limit_s

    def timed(kind, fn):
        t0 = time.perf_counter()
        r = fn()
        ms = (time.perf_counter() - t0) * 1000
        with lock:
            latencies[kind].append(ms)
        return r

    def client(_):
        conn = Connection(url)
        while True:
            with lock:
                i = next(next_index, None)
            if i is None or time.time() > give_up:
                return
            body = {"prompt": f"load test request {i}", "size": "16x16", "num_frames": 1, "steps": 1, "seed": i}
            code, text = timed("submit", lambda: conn.call("POST", "/v1/videos", body))
            if code != 200:
                with lock:
                    failures.append(f"submit {i}: {code} {text[:200]}")
                continue
            vid = json.loads(text)["id"]
            with lock:
                submitted.append(vid)
            while time.time() < give_up:
                v = json.loads(timed("status", lambda: conn.call("GET", f"/v1/videos/{vid}"))[1])
                if v["status"] in ("completed", "failed"):
                    break
                time.sleep(args.poll_ms / 1000)
            if v["status"] != "completed":
                with lock:
                    failures.append(f"{vid}: {v['status']} {v.get('error')}")
                continue
            code, content = timed("download", lambda: conn.call("GET", f"/v1/videos/{vid}/content"))
            if code != 200 or not content:
                with lock:
                    failures.append(f"{vid}: download {code}")
                continue
            with lock:
                completed.append(vid)

    t0 = time.time()
    with concurrent.futures.ThreadPoolExecutor(args.clients) as pool:
        list(pool.map(client, range(args.clients)))
    wall_s = time.time() - t0

    # Nothing lost or duplicated: the server lists exactly the submitted ids, once each.
    listed, after = [], None
    conn = Connection(url)
    while True:
        q = "/v1/videos?limit=100&order=asc" + (f"&after={after}" if after else "")
        page = json.loads(timed("list", lambda: conn.call("GET", q))[1])
        listed += [v["id"] for v in page["data"]]
        if not page["has_more"]:
            break
        after = page["last_id"]
    metrics = conn.call("GET", "/metrics")[1].decode()
    if proc:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)

    api = [ms for kind in latencies for ms in latencies[kind]]
    checks = {
        "all_completed": len(completed) == args.requests,
        "none_lost": set(listed) >= set(submitted) and len(submitted) == args.requests,
        "none_duplicated": len(listed) == len(set(listed)) and len(submitted) == len(set(submitted)),
        "listed_equals_submitted": sorted(listed) == sorted(submitted),
        "api_p99_under_50ms": percentile(api, 99) is not None and percentile(api, 99) < 50,
    }
    result = {
        "command": "python3 " + " ".join(sys.argv),
        "server_command": server_cmd,
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": git("rev-parse", "HEAD"),
        "uncommitted_changes": bool(git("status", "--porcelain")),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "requests": args.requests, "clients": args.clients,
        "request_shape": {"size": "16x16", "num_frames": 1, "steps": 1},
        "wall_s": round(wall_s, 2), "completed_per_s": round(len(completed) / wall_s, 1),
        "submitted": len(submitted), "completed": len(completed), "listed": len(listed),
        "failures": failures[:20],
        "latency_ms": {kind: summary(ms) for kind, ms in latencies.items()},
        "api_calls_without_generation": summary(api),
        "checks": checks,
        "metrics_excerpt": [l for l in metrics.splitlines()
                            if l.startswith(("ditserve_requests{", "ditserve_device_busy", "ditserve_phase_seconds_count"))],
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
