#!/usr/bin/env python3
"""bench/parallel_compare.py on fixture profiles (no GPU, no ditserve): speed-ups per
shape beside the issue's PyTorch figures, the 720p x 51f target, the move cost, shapes
matched by size and frames rather than by name, and a run cut off by its time budget
(no profile JSON) read from its log."""

import json
import os
import subprocess
import sys
import tempfile
import unittest

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench",
                      "parallel_compare.py")


def shape(name, height, width, frames, step, decode, move):
    return {"name": name, "height": height, "width": width, "frames": frames,
            "step_ms": {str(k): v for k, v in step.items()}, "encode_ms": 20.0,
            "decode_ms": {str(k): v for k, v in decode.items()}, "move_ms": move}


class ParallelCompareTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text if isinstance(text, str) else json.dumps(text))
        return path

    def compare(self, runs):
        out = os.path.join(self.dir, "parallel.json")
        args = [sys.executable, SCRIPT, "--commit", "abc", "--gpu", "2 x test", "--out", out]
        for log, js in runs:
            args += ["--run", log, js]
        r = subprocess.run(args, capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(out) as f:
            return json.load(f), r.stdout

    def opensora_run(self, t720=(1000.0, 500.0)):
        profile = {"model": "opensora-v1.2", "hardware": "2x test", "shapes": [
            shape("720p", 720, 1280, 51, {1: t720[0], 2: t720[1]}, {1: 5000.0, 2: 2600.0}, 40.0),
            shape("720p-102f", 720, 1280, 102, {1: 1900.0, 2: 1000.0}, {1: 9000.0, 2: 5000.0},
                  80.0),
            shape("360p", 360, 640, 51, {1: 150.0, 2: 90.0}, {1: 900.0, 2: 500.0}, 8.0)]}
        log = ("profile: 720p runs at 1280x720, 51 frames -> 15 latent frames\n"
               "profile: 720p-102f runs at 1280x720, 102 frames -> 30 latent frames\n"
               "profile: 360p runs at 640x368, 51 frames -> 15 latent frames\n"
               "profile: loading opensora-v1.2 on 2 device(s)\n"
               "profile: 720p move cuda:0 -> cuda:1: 40.000 ms\n")
        return self.write("os.log", log), self.write("os.json", profile)

    def row(self, summary, model, label):
        rows = [r for r in summary["rows"] if r["model"] == model and r["shape"] == label]
        self.assertEqual(len(rows), 1, [r["shape"] for r in summary["rows"]])
        return rows[0]

    def test_speedups_beside_the_issue_figures_and_the_target(self):
        cut_log = self.write("wan.log", (
            "profile: 832x480 runs at 832x480, 81 frames -> 21 latent frames\n"
            "profile: loading wan2.1-t2v-1.3b on 2 device(s)\n"
            "profile: encode 16.000 ms\n"
            "profile: 832x480 step DoP 1: 1000.000 ms\n"
            "profile: 832x480 step DoP 2: 550.000 ms\n"
            "profile: 832x480 decode DoP 1: 2100.000 ms\n"))
        s, printed = self.compare([self.opensora_run(), (cut_log, cut_log + ".absent.json")])
        self.assertEqual(s["commit"], "abc")
        self.assertEqual(s["gpu"], "2 x test")

        r720 = self.row(s, "opensora-v1.2", "720p x 51f")
        self.assertEqual(r720["speedup_dop2"], 2.0)
        self.assertEqual(r720["reference"]["step_ms"], {"1": 1082.0, "2": 608.0})
        self.assertAlmostEqual(r720["reference"]["speedup_dop2"], 1082 / 608, places=3)
        self.assertAlmostEqual(r720["vs_reference"]["2"], 608 / 500, places=3)
        self.assertEqual(r720["move_ms"], 40.0)
        self.assertEqual(r720["move"], "cuda:0 -> cuda:1")
        self.assertEqual(s["target"]["speedup"], 2.0)
        self.assertTrue(s["target"]["met"])

        r102 = self.row(s, "opensora-v1.2", "720p x 102f")
        self.assertEqual(r102["latent_frames"], 30)
        self.assertEqual(r102["reference"]["step_ms"], {"1": 2075.0, "2": 1118.0})
        self.assertEqual(r102["speedup_dop2"], 1.9)
        r360 = self.row(s, "opensora-v1.2", "360p x 51f")
        self.assertIsNone(r360["reference"])  # the issue has no 360p figure
        self.assertEqual(r360["runs_at"], "640x368")
        self.assertEqual(s["not_measured"], ["144p x 51f", "240p x 51f", "480p x 51f"])

        # The cut-off Wan run: what its log shows, marked as such; no figures invented.
        wan = self.row(s, "wan2.1-t2v-1.3b", "832x480 x 81f")
        self.assertTrue(wan["source"].startswith("log"))
        self.assertAlmostEqual(wan["speedup_dop2"], 1000 / 550, places=3)
        self.assertEqual(wan["decode_ms"], {"1": 2100.0})
        self.assertIsNone(wan["decode_speedup_dop2"])
        self.assertIsNone(wan["move_ms"])
        self.assertNotIn("reference", wan)
        self.assertEqual([m["shape"] for m in s["moves"]],
                         ["720p x 51f", "720p x 102f", "360p x 51f"])  # the issue's table first
        self.assertIn("met (2.00x)", printed)

    def test_a_missed_target_and_a_shape_named_by_another_list(self):
        # A second call that ran 720p x 102f alone: the profile names it "720p".
        later = self.write("later.json", {"model": "opensora-v1.2", "shapes": [
            shape("720p", 720, 1280, 102, {1: 2000.0, 2: 1100.0}, {1: 9000.0}, 70.0)]})
        only_720_51 = {"model": "opensora-v1.2", "shapes": [
            shape("720p", 720, 1280, 51, {1: 1000.0, 2: 600.0}, {1: 5000.0}, 40.0)]}
        s, printed = self.compare([(self.write("a.log", ""), self.write("a.json", only_720_51)),
                                   (self.write("b.log", ""), later)])
        self.assertFalse(s["target"]["met"])
        self.assertEqual(s["target"]["speedup"], round(1000 / 600, 3))
        self.assertIn("NOT met", printed)
        r102 = self.row(s, "opensora-v1.2", "720p x 102f")
        self.assertEqual(r102["profile_name"], "720p")
        self.assertEqual(r102["reference"]["step_ms"], {"1": 2075.0, "2": 1118.0})

    def test_nothing_measured_fails(self):
        log = self.write("empty.log", "error: --shapes: 720p: something\n")
        out = os.path.join(self.dir, "parallel.json")
        r = subprocess.run([sys.executable, SCRIPT, "--run", log, log + ".json", "--out", out],
                           capture_output=True, text=True)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("no run measured anything", r.stderr)


if __name__ == "__main__":
    unittest.main()
