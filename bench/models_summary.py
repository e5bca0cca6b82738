"""Turns the log of bench/gpu_models.sh into one JSON result (figures parsed from the
lines the tools print), so the committed result carries the command and the commit."""
import argparse
import json
import re


def main():
    p = argparse.ArgumentParser()
    p.add_argument("log")
    p.add_argument("gpu_check")
    p.add_argument("--commit", required=True)
    p.add_argument("--command", required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    log = open(a.log).read()
    check = json.load(open(a.gpu_check))
    out = {"commit": a.commit, "command": a.command, "gpu": log.splitlines()[1].strip(),
           "gpu_check": {"total": check["total"], "failed": check["failed"]}, "log": log}
    m = re.search(r"latents rel\. error ([0-9.e+-]+) \(DiT bf16 on CUDA\); decoded video rel\. "
                  r"error ([0-9.e+-]+) \(VAE f32 on CUDA\), ([0-9.e+-]+) \(VAE bf16", log)
    if m:
        out["tiny_cuda_vs_cpu"] = {"latents_rel_error_after_3_steps_dit_bf16": float(m.group(1)),
                                   "latents_threshold": 2e-2,
                                   "decoded_video_rel_error_vae_f32": float(m.group(2)),
                                   "decoded_video_rel_error_vae_bf16": float(m.group(3))}
    m = re.search(r"timings: load ([0-9.]+) s, encode ([0-9.]+) s, denoise ([0-9.]+) s "
                  r"\(([0-9.]+) s/step\), decode ([0-9.]+) s, write ([0-9.]+) s", log)
    if m:
        keys = ["load_s", "encode_s", "denoise_s", "denoise_s_per_step", "decode_s", "write_s"]
        out["opensora_720p_51f_30_steps"] = dict(zip(keys, map(float, m.groups())))
    m = re.search(r"peak GPU memory used: ([0-9]+) MiB", log)
    if m:
        out.setdefault("opensora_720p_51f_30_steps", {})["peak_gpu_memory_mib"] = int(m.group(1))
    m = re.search(r"T5 vs transformers on (\S+): relative error ([0-9.e+-]+)", log)
    if m:
        out["t5_xxl_vs_transformers"] = {"device": m.group(1), "rel_error": float(m.group(2)),
                                         "threshold": 1e-2}
    json.dump(out, open(a.out, "w"), indent=2)
    print(json.dumps({k: v for k, v in out.items() if k != "log"}, indent=2))


if __name__ == "__main__":
    main()
