"""Checkpoint reading shared by the reference scripts: a .safetensors file, a sharded
*.index.json, or a directory holding either (the layouts ditserve's io/ reads)."""
import json
import os

from safetensors import safe_open


def checkpoint_files(path):
    if os.path.isfile(path):
        if path.endswith(".json"):
            folder = os.path.dirname(path)
            with open(path) as f:
                shards = sorted(set(json.load(f)["weight_map"].values()))
            return [os.path.join(folder, s) for s in shards]
        return [path]
    index = os.path.join(path, "model.safetensors.index.json")
    if os.path.isfile(index):
        return checkpoint_files(index)
    singles = [f for f in os.listdir(path) if f.endswith(".safetensors")]
    if len(singles) != 1:
        raise SystemExit(f"{path}: expected an index or exactly one .safetensors file")
    return [os.path.join(path, singles[0])]


def load_state(path, convert=lambda tensor: tensor):
    """Every tensor of the checkpoint by name, passed through `convert` as it is read."""
    state = {}
    for file in checkpoint_files(path):
        with safe_open(file, framework="pt") as f:
            for name in f.keys():
                state[name] = convert(f.get_tensor(name))
    return state
