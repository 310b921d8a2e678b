"""How much of a model's validation score is its BatchNorm running statistics: validates model
files as `bench/validation.py` does, then again after re-estimating every BatchNorm's running
mean and variance as a plain average over BATCHES training batches of the config's crops and
degradation (SWA's bn_update; weights untouched). Optionally writes the re-estimated model.

    .venv/bin/python bench/batchnorm_stats.py configs/default_campaign.yaml MODEL.safetensors [MORE...] [--batches 250] [--out DIR]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from revamp.models.files import load_model, save_model
from revamp.runtime import use_bf16
from revamp.train.common import TrainingData
from revamp.train.config import load_config


@torch.no_grad()
def reestimate(model: torch.nn.Module, loader: DataLoader, bf16: bool) -> None:
    norms = {m: m.momentum for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over every batch, not the last few
    model.train()
    for degraded, _ in loader:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            model(degraded.contiguous(memory_format=torch.channels_last))
    model.eval()
    for m, momentum in norms.items():
        m.momentum = momentum


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("models", nargs="+")
    parser.add_argument("--batches", type=int, default=250)
    parser.add_argument("--seed", type=int, default=777, help="of the crops and degradations (training uses seed*1000+)")
    parser.add_argument("--out", help="folder for the re-estimated model files")
    args = parser.parse_args()
    cfg = load_config(args.config)
    data = TrainingData(cfg)
    bf16 = use_bf16(cfg["bf16"], torch.device("cpu"))
    phase = cfg["phases"][-1]
    dataset = data.pairs(phase["patch"], args.seed)
    for path in args.models:
        model, meta = load_model(path)
        model = model.float().to(memory_format=torch.channels_last)
        row = {"model": path, "as_saved": data.val.evaluate(model, torch.device("cpu"), bf16)}
        loader = DataLoader(dataset, batch_size=phase["batch"], sampler=range(args.batches * phase["batch"]), num_workers=cfg["data"]["workers"])
        reestimate(model, loader, bf16)
        row["reestimated"] = data.val.evaluate(model, torch.device("cpu"), bf16)
        print(json.dumps({k: v if isinstance(v, str) else {m: round(x, 5) for m, x in v.items()} for k, v in row.items()}), flush=True)
        if args.out:
            Path(args.out).mkdir(parents=True, exist_ok=True)
            save_model(model, Path(args.out) / Path(path).name, name=meta["name"], task=meta["task"], recipe=meta["recipe"])


if __name__ == "__main__":
    main()
