"""What folding the encoder's BatchNorms into their convolutions (revamp.models.unet.fold_batchnorm,
done by every torch Restorer) gains: one tile of a shipped model, folded and unfolded taking
turns in one process, so the host's drifting speed hits both alike.

    .venv/bin/python bench/fold_batchnorm.py [--models fast,default] [--tile 768x736] [--runs 7] [--json FILE]

Reports the median seconds per tile in bf16 autocast (the `auto` backend on this CPU) and the
largest output difference in fp32 (folding is exact up to float rounding) and in bf16.
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

from revamp.bench import machine
from revamp.models.files import load_model
from revamp.models.unet import fold_batchnorm
from revamp.registry import resolve_model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="fast,default")
    parser.add_argument("--tile", default="768x736", help="WxH, multiples of 32 (default 768x736: a 720p frame's first tile in revamp video)")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", help="also write the result to this file")
    args = parser.parse_args()
    w, h = (int(v) for v in args.tile.lower().split("x"))
    results = {}
    for name in args.models.split(","):
        plain, _ = load_model(resolve_model(name), torch.device("cpu"))
        folded = copy.deepcopy(plain)
        pairs = fold_batchnorm(folded)
        plain, folded = (m.to(memory_format=torch.channels_last) for m in (plain, folded))
        x = torch.rand(1, 3 + plain.config.cond_channels, h, w, generator=torch.Generator().manual_seed(0))
        x = x.contiguous(memory_format=torch.channels_last)
        times = {"plain": [], "folded": []}
        with torch.inference_mode():
            fp32_diff = (plain(x) - folded(x)).abs().max().item()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                bf16_diff = (plain(x).float() - folded(x).float()).abs().max().item()
                for _ in range(args.runs):
                    for label, model in (("plain", plain), ("folded", folded)):
                        start = time.perf_counter()
                        model(x)
                        times[label].append(time.perf_counter() - start)
        plain_s, folded_s = (statistics.median(times[k][1:]) for k in ("plain", "folded"))  # first turn: warm-up
        results[name] = {"pairs_folded": pairs, "s_per_tile_bf16": {"plain": round(plain_s, 3), "folded": round(folded_s, 3)},
                         "speedup": round(plain_s / folded_s, 3), "max_abs_diff_fp32": fp32_diff, "max_abs_diff_bf16": bf16_diff}
    report = {"command": "bench/fold_batchnorm.py " + " ".join(sys.argv[1:]), "tile": args.tile, "runs": args.runs,
              "machine": machine(), "results": results}
    print(json.dumps(report, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
