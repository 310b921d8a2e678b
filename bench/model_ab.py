"""What an exact inference change gains: one tile of a shipped model, before and after the change,
taking turns in one process, so the host's drifting speed hits both alike.

    .venv/bin/python bench/model_ab.py --change fold-batchnorm|blur|compile [--models default,full] [--tile 768x736] [--runs 7] [--json FILE]

Changes (each is in the product; "before" rebuilds what it replaced):
- fold-batchnorm: revamp.models.unet.fold_batchnorm (the encoder's BatchNorms folded into their
  convolutions, done by every torch Restorer); before = unfolded.
- blur: revamp.models.unet.Blur; before = ReplicationPad2d + AvgPool2d, which CPU autocast runs in
  fp32 (a full-resolution fp32 copy in the full decoder).
- compile: revamp.inference.restorer.compile_for_inference (torch.compile, inductor, with freezing) of the
  whole generator, which revamp does only when asked (`revamp video --compile`: a C++ compiler at
  run time, 20-90 s of compiling here); before = eager. Also reports the first call's time.

Reports the median seconds per tile in bf16 autocast (the `auto` backend on this CPU) and the
largest output difference in fp32 and in bf16.
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

from revamp.evaluation.speed import machine
from revamp.inference.restorer import compile_for_inference
from revamp.models.files import load_model
from revamp.models.registry import resolve_model
from revamp.models.unet import Blur, fold_batchnorm


def legacy_blur(model: nn.Module) -> int:
    """Put back the blur as it was before revamp.models.unet.Blur."""
    swapped = 0
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, Blur):
                setattr(parent, name, nn.Sequential(nn.ReplicationPad2d((1, 0, 1, 0)), nn.AvgPool2d(2, stride=1)))
                swapped += 1
    return swapped


def variants(change: str, model: nn.Module) -> tuple[nn.Module, nn.Module, int]:
    """(before, after, modules changed)."""
    other = copy.deepcopy(model)
    if change == "fold-batchnorm":
        return model, other, fold_batchnorm(other)
    fold_batchnorm(model)  # as every torch Restorer runs it
    fold_batchnorm(other)
    if change == "compile":
        return model, compile_for_inference(other), 1
    return other, model, legacy_blur(other)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--change", required=True, choices=("fold-batchnorm", "blur", "compile"))
    parser.add_argument("--models", default="default,full")
    parser.add_argument("--tile", default="768x736", help="WxH, multiples of 32 (default 768x736: a 720p frame's first tile in revamp video)")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", help="also write the result to this file")
    args = parser.parse_args()
    w, h = (int(v) for v in args.tile.lower().split("x"))
    results = {}
    for name in args.models.split(","):
        model, _ = load_model(resolve_model(name), torch.device("cpu"))
        before, after, changed = variants(args.change, model)
        before, after = (m.to(memory_format=torch.channels_last) for m in (before, after))
        x = torch.rand(1, 3 + model.config.cond_channels, h, w, generator=torch.Generator().manual_seed(0))
        x = x.contiguous(memory_format=torch.channels_last)
        times = {"before": [], "after": []}
        with torch.inference_mode():
            with torch.autocast("cpu", dtype=torch.bfloat16):
                start = time.perf_counter()
                bf16_diff = (after(x).float() - before(x).float()).abs().max().item()
                first_call_s = time.perf_counter() - start  # compiling, for --change compile
            fp32_diff = (before(x) - after(x)).abs().max().item()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                for _ in range(args.runs):
                    for label, variant in (("before", before), ("after", after)):
                        start = time.perf_counter()
                        variant(x)
                        times[label].append(time.perf_counter() - start)
        before_s, after_s = (statistics.median(times[k][1:]) for k in ("before", "after"))  # first turn: warm-up
        results[name] = {"modules_changed": changed, "s_per_tile_bf16": {"before": round(before_s, 3), "after": round(after_s, 3)},
                         "speedup": round(before_s / after_s, 3), "max_abs_diff_fp32": fp32_diff, "max_abs_diff_bf16": bf16_diff,
                         "first_call_s": round(first_call_s, 1)}
    report = {"command": "bench/model_ab.py " + " ".join(sys.argv[1:]), "change": args.change, "tile": args.tile, "runs": args.runs,
              "machine": machine(), "results": results}
    print(json.dumps(report, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
