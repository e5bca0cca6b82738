#!/usr/bin/env python3
"""Integration tests of `ditserve serve`: the real binary on a loopback port with CPU
devices, driven over HTTP by the official `openai` Python SDK (videos, models) and by
`requests` for the rest. Run by ctest (tests/CMakeLists.txt passes DITSERVE_BIN); exits 77
(ctest: skipped) when the openai or requests package is missing."""

import base64
import concurrent.futures
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import warnings

try:
    import openai
    import requests
except ImportError as e:  # tools/test.sh installs them
    print(f"skipping: {e}")
    sys.exit(77)

warnings.filterwarnings("ignore", category=DeprecationWarning)  # the SDK marks videos deprecated
BIN = os.environ.get("DITSERVE_BIN", "build/src/cli/ditserve")
DEVICES = "cpu:0,cpu:1"
# Small enough for CI; a "slow" job runs long enough to be caught running.
QUICK = {"size": "32x32", "num_frames": 5, "steps": 2}
SLOW = {"size": "128x128", "num_frames": 9, "steps": 400}  # about 10 ms a step on one CPU
MEDIUM = {**SLOW, "steps": 120}  # caught running, yet finishes in a few seconds


class Server:
    """`ditserve serve` in a subprocess on a free port, with its own data directory."""

    def __init__(self, data_dir, *extra, devices=DEVICES):
        self.data_dir = data_dir
        env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="passive")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--port", "0", "--devices", devices, "--data-dir", data_dir, *extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.banner = self._read_banner()
        self.port = int(self.banner.split("http://127.0.0.1:")[1].split(" ")[0])
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = []
        self._drain = threading.Thread(target=self._drain_output, daemon=True)
        self._drain.start()

    def _read_banner(self):
        deadline = time.time() + 120
        seen = []
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            if "listening on" in line:
                return line
        self.proc.kill()
        raise RuntimeError("ditserve serve did not start:\n" + "".join(seen))

    def _drain_output(self):
        for line in self.proc.stdout:
            self.log.append(line)

    def client(self):
        return openai.OpenAI(base_url=self.url + "/v1", api_key="unused", max_retries=0, timeout=60)

    def stop(self):
        """SIGTERM, as an operator would; returns the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)

    def crash(self):
        self.proc.kill()  # SIGKILL: no chance to clean up
        self.proc.wait(timeout=30)

    def close(self):
        if self.proc.poll() is None:
            self.crash()
        self._drain.join(timeout=10)
        self.proc.stdout.close()


def wait_for(predicate, timeout=180, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def submit(url, **fields):
    r = requests.post(url + "/v1/videos", json={"prompt": "a lighthouse at dusk", **fields}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def status(url, video_id):
    r = requests.get(f"{url}/v1/videos/{video_id}", timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def wait_status(url, video_id, wanted, timeout=180):
    return wait_for(lambda: (lambda v: v if v["status"] == wanted else None)(status(url, video_id)),
                    timeout, f"{video_id} {wanted}")


def read_events(url, video_id):
    """The job's server-sent events from the first, as (event type, data) pairs; returns
    when the stream ends (after the terminal event)."""
    events, frame = [], {}
    with requests.get(f"{url}/v1/videos/{video_id}/events", stream=True, timeout=120) as r:
        assert r.status_code == 200, r.text
        for line in r.iter_lines(decode_unicode=True):
            if line == "":
                if "data" in frame:
                    events.append((frame["event"], json.loads(frame["data"])))
                frame = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(": ")
                frame[key] = value
    return events


def leftovers(data_dir, video_id):
    """What the data directory still holds of the job: its files (output, state) and its
    row in the job store."""
    found = [os.path.join(d, f) for d in ("outputs", "state")
             for f in os.listdir(os.path.join(data_dir, d)) if f.startswith(video_id)]
    with sqlite3.connect(os.path.join(data_dir, "jobs.db")) as db:
        found += [f"jobs.db row {row[0]}" for row in db.execute("SELECT id FROM jobs WHERE id = ?", (video_id,))]
    return found


def ffprobe(path):
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
         "stream=codec_name,width,height,nb_read_frames", "-of", "json", path],
        capture_output=True, text=True, check=True).stdout
    return json.loads(out)["streams"][0]


class ServeTest(unittest.TestCase):
    def setUp(self):
        # unittest resets warning filters per test: the SDK marks the videos API deprecated.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        self.tmp = tempfile.TemporaryDirectory(prefix="ditserve_serve_")
        self.data = os.path.join(self.tmp.name, "data")
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.close()
        self.tmp.cleanup()

    def start(self, *extra, devices=DEVICES):
        s = Server(self.data, *extra, devices=devices)
        self.servers.append(s)
        return s

    def test_sdk_submit_poll_download_list(self):
        s = self.start()
        client = s.client()
        video = client.videos.create(prompt="a red kite over the sea", size="64x64",
                                     extra_body={"num_frames": 9, "steps": 2, "seed": 3})
        self.assertEqual(video.object, "video")
        self.assertIn(video.status, ("queued", "in_progress"))
        self.assertEqual(video.size, "64x64")
        self.assertEqual(video.model, "tiny")
        done = wait_for(lambda: (lambda v: v if v.status in ("completed", "failed") else None)(
            client.videos.retrieve(video.id)), what="completion")
        self.assertEqual(done.status, "completed", done)
        self.assertEqual(done.progress, 100)
        path = os.path.join(self.tmp.name, "out.mp4")
        client.videos.download_content(video.id).write_to_file(path)
        probe = ffprobe(path)
        self.assertEqual(probe["codec_name"], "h264")
        self.assertEqual((probe["width"], probe["height"]), (64, 64))
        self.assertEqual(int(probe["nb_read_frames"]), 9)
        # seconds (OpenAI's field) maps to frames at 24 fps
        one_second = client.videos.create(prompt="a tree", size="32x32", seconds="1",
                                          extra_body={"steps": 1})
        self.assertEqual(one_second.seconds, "1")
        self.assertEqual(one_second.model_extra["num_frames"], 24)
        ids = [v.id for v in client.videos.list(limit=1)]  # the SDK pages with `after`
        self.assertEqual(sorted(ids), sorted([video.id, one_second.id]))
        models = [m.id for m in client.models.list()]
        self.assertIn("tiny", models)

    def test_sse_progress(self):
        s = self.start()
        video = submit(s.url, **{**QUICK, "steps": 4})
        events = []
        with requests.get(f"{s.url}/v1/videos/{video['id']}/events", stream=True, timeout=120) as r:
            self.assertEqual(r.status_code, 200)
            self.assertTrue(r.headers["Content-Type"].startswith("text/event-stream"))
            frame = {}
            for line in r.iter_lines(decode_unicode=True):
                if line == "":
                    if "data" in frame:
                        events.append(frame)
                    frame = {}
                elif not line.startswith(":"):
                    key, _, value = line.partition(": ")
                    frame[key] = value
        data = [json.loads(e["data"]) for e in events]
        self.assertEqual([int(e["id"]) for e in events], list(range(len(events))))
        steps = [d["step"] for d, e in zip(data, events) if e["event"] == "step"]
        self.assertEqual(steps, [1, 2, 3, 4])  # one event per finished step
        phases = [d["phase"] for d, e in zip(data, events) if e["event"] == "phase"]
        self.assertEqual(phases[-2:], ["decoding", "completed"])
        self.assertIn("encoding", phases)
        self.assertEqual(data[-1]["progress"], 100)
        self.assertGreaterEqual(max(d["dop"] for d in data), 1)

    def test_cancel(self):
        """Deleting a running video cancels it and removes it: from the answer on its id is
        unknown, its devices are freed, and nothing of it stays in the data directory."""
        s = self.start()
        client = s.client()
        video = submit(s.url, **SLOW)
        wait_for(lambda: status(s.url, video["id"])["step"] >= 1, what="first step")
        deleted = client.videos.delete(video["id"])
        self.assertEqual((deleted.id, deleted.object, deleted.deleted), (video["id"], "video.deleted", True))
        with self.assertRaises(openai.NotFoundError):
            client.videos.retrieve(video["id"])
        with self.assertRaises(openai.NotFoundError):  # deleted already
            client.videos.delete(video["id"])
        # its devices were freed: a new job runs
        wait_status(s.url, submit(s.url, **QUICK)["id"], "completed")
        wait_for(lambda: not leftovers(s.data_dir, video["id"]), timeout=30, what="the deleted job's files")

    def test_bad_inputs_are_4xx_naming_the_field(self):
        s = self.start("--max-body-bytes", "65536", "--timeout", "1")
        cases = [
            ('{"prompt": "x", ', None),                       # malformed JSON
            ('{"prompt": "x", "steps": "2"}', "steps"),       # wrong type
            ('{"prompt": 7}', "prompt"),
            ('{"prompt": "x", "colour": "red"}', "colour"),   # unknown field
            ('{"prompt": "x", "model": "sora-2"}', "model"),  # unknown model
            ('{"prompt": "x", "size": "8192x8192"}', "size"),  # out of range
            ('{"prompt": "x", "size": "33x32"}', "size"),
            ('{"prompt": "x", "num_frames": 100000}', "num_frames"),  # absurd
            ('{"prompt": "x", "steps": 1000000}', "steps"),
        ]
        for body, param in cases:
            r = requests.post(s.url + "/v1/videos", data=body, headers={"Content-Type": "application/json"})
            self.assertEqual(r.status_code, 400, body)
            self.assertEqual(r.json()["error"]["param"], param, body)
            self.assertTrue(r.json()["error"]["message"])
        r = requests.post(s.url + "/v1/videos", data="x" * 200_000, headers={"Content-Type": "application/json"})
        self.assertEqual(r.status_code, 413)
        self.assertIn("error", r.json())
        r = requests.get(s.url + "/v1/videos/video_doesnotexist")
        self.assertEqual((r.status_code, r.json()["error"]["param"]), (404, "video_id"))
        with self.assertRaises(openai.NotFoundError):
            s.client().videos.retrieve("video_doesnotexist")
        # Deleting a completed video removes it and its file; a second delete is a 404.
        done = wait_status(s.url, submit(s.url, **QUICK)["id"], "completed")
        self.assertTrue(leftovers(self.data, done["id"]))
        self.assertTrue(s.client().videos.delete(done["id"]).deleted)
        with self.assertRaises(openai.NotFoundError):
            s.client().videos.retrieve(done["id"])
        self.assertEqual(leftovers(self.data, done["id"]), [])
        r = requests.delete(f"{s.url}/v1/videos/{done['id']}")
        self.assertEqual((r.status_code, r.json()["error"]["param"]), (404, "video_id"))
        # A client that stalls mid-request is dropped after --timeout; one that vanishes
        # from an event stream costs nothing; the server keeps serving throughout.
        stalled = socket.create_connection(("127.0.0.1", s.port))
        stalled.sendall(b"POST /v1/videos HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"pro")
        self.assertEqual(requests.get(s.url + "/health").json()["status"], "ok")
        stalled.settimeout(10)
        t0 = time.time()
        stalled.recv(4096)  # returns when the server closes the connection
        self.assertLess(time.time() - t0, 8)
        stalled.close()
        slow = submit(s.url, **SLOW)
        vanished = socket.create_connection(("127.0.0.1", s.port))
        vanished.sendall(f"GET /v1/videos/{slow['id']}/events HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        vanished.recv(100)
        vanished.close()
        requests.delete(f"{s.url}/v1/videos/{slow['id']}")
        self.assertEqual(requests.get(s.url + "/health").json()["status"], "ok")  # still serving

    def test_burst_gets_429_with_retry_after(self):
        s = self.start("--max-queue", "2", devices="cpu:0")
        def post(_):
            return requests.post(s.url + "/v1/videos", json={"prompt": "burst", **SLOW}, timeout=30)
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(post, range(16)))
        codes = [a.status_code for a in answers]
        self.assertTrue(set(codes) <= {200, 429}, codes)
        limited = [a for a in answers if a.status_code == 429]
        self.assertGreaterEqual(len(limited), 10)
        for a in limited:
            self.assertGreaterEqual(int(a.headers["Retry-After"]), 1)
            self.assertEqual(a.json()["error"]["type"], "rate_limit_error")
        accepted = [a.json()["id"] for a in answers if a.status_code == 200]
        listed = {v["id"] for v in requests.get(s.url + "/v1/videos?limit=100").json()["data"]}
        self.assertEqual(listed, set(accepted))  # exactly the accepted ones exist
        metrics = requests.get(s.url + "/metrics").text
        self.assertIn(f'ditserve_requests_rejected_total{{reason="queue_full"}} {len(limited)}', metrics)
        for i in accepted:
            requests.delete(f"{s.url}/v1/videos/{i}")

    def test_restart_after_kill_loses_nothing(self):
        s = self.start(devices="cpu:0")
        done = submit(s.url, **QUICK)
        wait_status(s.url, done["id"], "completed")
        running = submit(s.url, **MEDIUM)
        queued = [submit(s.url, **QUICK) for _ in range(2)]
        deleted = submit(s.url, **QUICK)
        requests.delete(f"{s.url}/v1/videos/{deleted['id']}").raise_for_status()
        wait_for(lambda: status(s.url, running["id"])["step"] >= 3, what="a running job")
        before = status(s.url, running["id"])["step"]
        s.crash()  # kill -9 with a job running, two queued, one deleted, one completed

        s2 = self.start(devices="cpu:0")
        # How many of the quick jobs the scheduler had finished before the kill may vary;
        # every job is accounted for either way.
        recovered = re.search(r"recovered (\d+) completed, (\d+) resumed, (\d+) cancelled, (\d+) failed; "
                              r"purged (\d+) deleted", s2.banner)
        self.assertIsNotNone(recovered, s2.banner)
        completed, resumed, cancelled_n, failed, purged = [int(n) for n in recovered.groups()]
        self.assertEqual((completed + resumed, cancelled_n, failed), (4, 0, 0), s2.banner)
        self.assertGreaterEqual(resumed, 1, s2.banner)  # at least the long job
        # The deleted job's record went at its cancellation, or (the kill came first) now.
        self.assertLessEqual(purged, 1, s2.banner)
        ids = {v["id"] for v in requests.get(s2.url + "/v1/videos?limit=100").json()["data"]}
        self.assertEqual(ids, {done["id"], running["id"], *(q["id"] for q in queued)})
        self.assertEqual(requests.get(f"{s2.url}/v1/videos/{deleted['id']}").status_code, 404)  # stays deleted
        self.assertEqual(leftovers(self.data, deleted["id"]), [])
        content = requests.get(f"{s2.url}/v1/videos/{done['id']}/content")
        self.assertEqual(content.status_code, 200)
        self.assertEqual(content.headers["Content-Type"], "video/mp4")
        # The running job resumes from its last durable step rather than from zero.
        steps_seen = []
        with requests.get(f"{s2.url}/v1/videos/{running['id']}/events", stream=True, timeout=180) as r:
            for line in r.iter_lines(decode_unicode=True):
                if line.startswith("data: "):
                    d = json.loads(line[6:])
                    if d["phase"] == "denoising":
                        steps_seen.append(d["step"])
        # The state file is written before a step is reported, so the job resumes at or
        # after the last step seen before the crash.
        self.assertTrue(steps_seen)
        self.assertGreaterEqual(steps_seen[0], before, steps_seen)
        for v in [running, *queued]:
            wait_status(s2.url, v["id"], "completed")
        self.assertEqual(s2.stop(), 0)  # SIGTERM: graceful

    def test_device_failure_job_still_completes(self):
        s = self.start("--inject-fault", "cpu:0:2")
        ids = [submit(s.url, **{**QUICK, "steps": 6})["id"] for _ in range(2)]
        for i in ids:
            v = wait_status(s.url, i, "completed")
            self.assertEqual(v["progress"], 100)
            path = os.path.join(self.tmp.name, i + ".mp4")
            with open(path, "wb") as f:
                f.write(requests.get(f"{s.url}/v1/videos/{i}/content").content)
            self.assertEqual(int(ffprobe(path)["nb_read_frames"]), QUICK["num_frames"])
            self.assertNotIn("cpu:0", v["devices"])  # the failed device is not used again

    def test_device_failure_during_decode_job_still_completes(self):
        # The elastic policy decodes on one device, the first of the job's last group:
        # cpu:0 fails as its first decode starts (an event with no decode group says so),
        # and that decode starts again on cpu:1.
        s = self.start("--inject-fault", "cpu:0:decode")
        ids = [submit(s.url, **QUICK)["id"] for _ in range(2)]
        decodes = []  # per job, the group of each decode started, from its events
        for i in ids:
            v = wait_status(s.url, i, "completed")
            self.assertEqual((v["decode_dop"], v["decode_devices"]), (1, ["cpu:1"]))  # not the failed one
            path = os.path.join(self.tmp.name, i + ".mp4")
            with open(path, "wb") as f:
                f.write(requests.get(f"{s.url}/v1/videos/{i}/content").content)
            self.assertEqual(int(ffprobe(path)["nb_read_frames"]), QUICK["num_frames"])
            started = [(kind, d["decode_devices"]) for kind, d in read_events(s.url, i) if d["phase"] == "decoding"]
            self.assertTrue(all(kind == "phase" for kind, _ in started), started)
            decodes.append([group for _, group in started])
        self.assertIn([["cpu:0"], [], ["cpu:1"]], decodes)  # the fault fired, and nothing was lost

    def test_wan_job_with_model_defaults(self):
        s = self.start("--models", "tiny,tiny-wan")
        # Only the steps given: tiny-wan's size (64x64), frames (5) and 16 fps apply.
        video = submit(s.url, model="tiny-wan", steps=2)
        self.assertEqual((video["model"], video["size"], video["num_frames"]), ("tiny-wan", "64x64", 5))
        self.assertEqual(video["seconds"], "0.31")  # 5 frames at Wan's 16 fps
        done = wait_status(s.url, video["id"], "completed", timeout=60)
        self.assertEqual(done["progress"], 100)
        path = os.path.join(self.tmp.name, "wan.mp4")
        with open(path, "wb") as f:
            f.write(requests.get(f"{s.url}/v1/videos/{video['id']}/content").content)
        probe = ffprobe(path)
        self.assertEqual((probe["width"], probe["height"], int(probe["nb_read_frames"])), (64, 64, 5))
        r = requests.post(s.url + "/v1/videos", json={"model": "tiny-wan", "prompt": "x", "num_frames": 6})
        self.assertEqual(r.status_code, 400, r.text)
        self.assertEqual(r.json()["error"]["param"], "num_frames")
        self.assertIn("4k+1", r.json()["error"]["message"])

    def test_wan_negative_prompt_sampler_shift(self):
        s = self.start("--models", "tiny,tiny-wan", devices="cpu:0")
        wan = {"model": "tiny-wan", **QUICK, "seed": 5}
        asked = {"negative_prompt": "blurry, static", "sampler": "euler", "shift": 3.5}
        video = submit(s.url, **wan, **asked)
        self.assertEqual({k: video[k] for k in asked}, asked)
        plain = submit(s.url, **wan)  # the model's defaults: shown as null
        self.assertEqual([plain[k] for k in asked], [None, None, None])
        # As a form (what the SDK sends), only the negative prompt differs from `video`.
        form = {k: (None, str(v)) for k, v in {**wan, "prompt": "a lighthouse at dusk",
                                                "negative_prompt": "dark"}.items()}
        r = requests.post(s.url + "/v1/videos", files=form, timeout=30)
        self.assertEqual(r.status_code, 200, r.text)
        other = r.json()
        self.assertEqual(other["negative_prompt"], "dark")
        again = submit(s.url, **wan)
        contents = []
        for v in (video, plain, other, again):
            wait_status(s.url, v["id"], "completed", timeout=60)
            contents.append(requests.get(f"{s.url}/v1/videos/{v['id']}/content", timeout=30).content)
        # The negative prompt reaches the model: one device, the same seed and request give
        # the same bytes, another unconditional branch does not.
        self.assertEqual(contents[1], contents[3])
        self.assertNotEqual(contents[1], contents[2])
        for body, param in [({"sampler": "ddim"}, "sampler"), ({"shift": 0}, "shift"),
                            ({"negative_prompt": ["x"]}, "negative_prompt"),
                            ({"negative_prompt": "x" * 9000}, "negative_prompt"),
                            ({"model": "tiny", "shift": 3}, "shift")]:
            r = requests.post(s.url + "/v1/videos", json={**wan, "prompt": "x", **body}, timeout=30)
            self.assertEqual(r.status_code, 400, r.text)
            self.assertEqual(r.json()["error"]["param"], param, r.text)
        self.assertEqual(s.stop(), 0)
        s2 = self.start("--models", "tiny,tiny-wan", devices="cpu:0")  # the fields survive a restart
        back = status(s2.url, video["id"])
        self.assertEqual({k: back[k] for k in asked}, asked)
        self.assertEqual(status(s2.url, plain["id"])["sampler"], None)

    def test_images_metrics_health(self):
        s = self.start()
        image = s.client().images.generate(model="tiny", prompt="a blue square", size="32x32", n=1,
                                           response_format="b64_json", extra_body={"steps": 2})
        png = base64.b64decode(image.data[0].b64_json)
        self.assertEqual(png[:8], b"\x89PNG\r\n\x1a\n")
        self.assertEqual(png[16:24], (32).to_bytes(4, "big") * 2)  # IHDR width, height
        r = requests.post(s.url + "/v1/images/generations",
                          json={"prompt": "a blue square", "size": "32x32", "steps": 1, "response_format": "url"},
                          timeout=120)
        self.assertEqual(requests.get(r.json()["data"][0]["url"]).content[:8], b"\x89PNG\r\n\x1a\n")
        metrics = requests.get(s.url + "/metrics").text
        for name in ["ditserve_queue_length ", 'ditserve_device_busy_fraction{device="cpu:0"}',
                     'ditserve_device_busy_fraction{device="cpu:1"}', 'ditserve_phase_seconds_count{phase="denoise"} ',
                     "ditserve_slo_attainment "]:
            self.assertIn(name, metrics)
        health = requests.get(s.url + "/health").json()
        self.assertEqual(health["status"], "ok")


if __name__ == "__main__":
    unittest.main(verbosity=2)
