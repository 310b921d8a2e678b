"""Tiles side by side (revamp.inference.tiling.TilePool, one intra-op thread per tile) against one tile at a
time on all cores: seconds per picture of `Restorer.restore_rgb`, its tiles cut evenly as
`revamp video` cuts a frame's (at most --tile px).

    .venv/bin/python bench/tile_workers.py [--size 1280x720] [--tile 768] [--model default] [--backend auto] [--rounds 8] [--json FILE]

The two ways take turns, one picture each per round after one warm-up each, so a drift in this
shared host's speed hits both alike; it reports the medians, their ratio and the largest
difference between the two outputs.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from peak_memory import make_picture
from PIL import Image

from revamp.evaluation.speed import machine
from revamp.inference.restorer import Restorer


def picture(w: int, h: int) -> np.ndarray:
    """bench/peak_memory.py's JPEG, decoded to RGB in [0, 1]."""
    buf = io.BytesIO()
    make_picture(buf, w, h)
    return np.asarray(Image.open(buf).convert("RGB"), dtype=np.float32) / 255


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--tile", type=int, default=768, help="tile size (default 768, as revamp video)")
    parser.add_argument("--model", default="default")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--json", help="also write the result to this file")
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    restorer = Restorer(args.model, device="cpu", tile=args.tile, backend=args.backend, even_tiles=True)
    if restorer.tile_pool is None:
        print("no tile pool here (one CPU thread, or the onnxruntime backend)", file=sys.stderr)
        return 1
    rgb = picture(w, h)
    pool = restorer.tile_pool
    ways = {"side by side": pool, "one at a time": None}
    times: dict[str, list[float]] = {name: [] for name in ways}
    outputs = {}
    for round_ in range(args.rounds + 1):
        for name, way in ways.items():
            restorer.tile_pool = way
            start = time.perf_counter()
            outputs[name] = restorer.restore_rgb(rgb.copy())
            if round_:  # the first round warms up
                times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(t) for name, t in times.items()}
    result = {"command": "bench/tile_workers.py " + " ".join(sys.argv[1:]), "size": args.size, "tile": args.tile,
              "tiles": restorer.tile_count(w, h), "workers": pool.workers, "model": args.model, "backend": restorer.backend,
              "rounds": args.rounds, "s_per_picture": {name: round(m, 3) for name, m in medians.items()},
              "all_s": {name: [round(v, 3) for v in t] for name, t in times.items()},
              "speedup": round(medians["one at a time"] / medians["side by side"], 3),
              "max_abs_diff": float(np.abs(outputs["side by side"] - outputs["one at a time"]).max()),
              "machine": machine(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
