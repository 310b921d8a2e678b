"""Training throughput of the generator step: 64x64 patches/s and full-image crops/s.

    .venv/bin/python bench/train_throughput.py [--config configs/full_psnr.yaml] [--seconds 20] [--compile] [--json FILE]

Times forward + loss + backward + optimizer step on batches already in memory (data
loading runs in DataLoader workers, off this path), for fp32 and bf16 autocast, after
warm-up; prints one JSON line per setting with the machine. The input has the config's planes
(image, codec planes, neighbouring frames). --compile: bf16 only, the eager step and the step
with the forward compiled (the config key `compile`), timed in turns, with the compile time.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import torch

from revamp.runtime import use_bf16
from revamp.train.config import load_config
from revamp.train.generator import build_generator
from revamp.train.losses import WeightedLoss


def training_step(cfg: dict, patch: int, batch: int, bf16: bool, compiled: bool = False):
    """One generator step on a fixed batch, as revamp.train.generator takes it."""
    torch.manual_seed(0)
    model = build_generator(cfg)[0].to(memory_format=torch.channels_last).train()
    forward = torch.compile(model) if compiled else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loss_fn = WeightedLoss(cfg["loss"])
    scale = cfg["model"]["scale"]
    x = torch.rand(batch, model.config.input_planes, patch, patch).contiguous(memory_format=torch.channels_last)
    y = torch.rand(batch, 3, patch * scale, patch * scale)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            pred = forward(x)
        loss, _ = loss_fn(pred, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def measure(cfg: dict, patch: int, batch: int, bf16: bool, seconds: float) -> float:
    step = training_step(cfg, patch, batch, bf16)
    for _ in range(3):
        step()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        n += 1
    return n * batch / (time.perf_counter() - start)


def compile_ab(cfg: dict, patch: int, batch: int, seconds: float) -> dict:
    """Samples/s of the bf16 step eager and compiled, timed in turns (this host drifts), and the
    seconds the compiled model's first two steps took (compiling)."""
    start = time.perf_counter()
    compiled = training_step(cfg, patch, batch, True, compiled=True)
    compiled()
    compiled()
    first = time.perf_counter() - start
    steps = {"eager": training_step(cfg, patch, batch, True), "compiled": compiled}
    steps["eager"]()  # warm-up, as the compiled step had
    steps["eager"]()
    times, spent = {name: [] for name in steps}, 0.0
    while spent < 2 * seconds:
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
            spent += times[name][-1]
    rates = {name: batch / statistics.median(t) for name, t in times.items()}
    return {"eager_samples_per_s": round(rates["eager"], 2), "compiled_samples_per_s": round(rates["compiled"], 2),
            "speedup": round(rates["compiled"] / rates["eager"], 3), "first_two_steps_compiled_s": round(first, 1), "steps_each": len(times["eager"])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/full_psnr.yaml")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--compile", action="store_true", help="A/B the compiled training forward (bf16)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    cfg = load_config(args.config)
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads"
    results = []
    for phase in cfg["phases"]:
        if args.compile:
            row = {"command": "bench/train_throughput.py --compile", "config": args.config, "phase": phase["name"], "patch": phase["patch"],
                   "batch": phase["batch"], "dtype": "bf16", **compile_ab(cfg, phase["patch"], phase["batch"], args.seconds), "machine": machine}
            results.append(row)
            print(json.dumps(row), flush=True)
            continue
        for bf16 in (False, True):
            if bf16 and not use_bf16("auto", torch.device("cpu")):
                continue
            rate = measure(cfg, phase["patch"], phase["batch"], bf16, args.seconds)
            row = {"command": "bench/train_throughput.py", "config": args.config, "phase": phase["name"], "patch": phase["patch"], "batch": phase["batch"],
                   "dtype": "bf16" if bf16 else "fp32", "samples_per_s": round(rate, 1), "loss": cfg["loss"], "machine": machine}
            results.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
