"""A training config's validation set (the held-out images, JPEG qualities and `val_video` clips)
applied to model files: what a campaign's val.csv reports, for the shipped model too.

    .venv/bin/python bench/validation.py configs/default_video.yaml src/revamp/weights/default.safetensors [MORE.safetensors] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from revamp.models.files import load_model
from revamp.runtime import use_bf16
from revamp.train.common import TrainingData
from revamp.train.config import load_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("models", nargs="+")
    parser.add_argument("--json")
    args = parser.parse_args()
    cfg = load_config(args.config)
    val = TrainingData(cfg).val
    device = torch.device("cpu")
    results = {}
    for path in args.models:
        model = load_model(path)[0].float().to(memory_format=torch.channels_last)
        results[path] = {k: round(v, 5) for k, v in val.evaluate(model, device, use_bf16(cfg["bf16"], device)).items()}
        print(path, json.dumps(results[path]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"config": args.config, "results": results}, indent=1))


if __name__ == "__main__":
    main()
