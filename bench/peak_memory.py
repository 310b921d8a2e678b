"""Peak resident memory of `revamp image` on one big synthetic JPEG (default 8000x6000).

    .venv/bin/python bench/peak_memory.py [--size 8000x6000] [--tile 512]

Runs the CLI in a child process and reports its peak RSS (ru_maxrss), wall time
and the machine, as one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def make_picture(path, w: int, h: int) -> None:
    """A smooth, photo-like JPEG at q20, as archive material is, written to a path or file object."""
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (h // 64 + 1, w // 64 + 1, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC)  # smooth, photo-like
    img.save(path, "JPEG", quality=20)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="8000x6000")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--model", default="default")
    parser.add_argument("--json", help="also write the result to this file")
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "big.jpg"
        make_picture(src, w, h)
        start = time.perf_counter()
        cmd = [sys.executable, "-m", "revamp.cli", "image", str(src), "-o", str(Path(tmp) / "out"), "-q", "--tile", str(args.tile), "--model", args.model]
        subprocess.run(cmd, check=True, env=dict(os.environ, OMP_WAIT_POLICY="PASSIVE"))
        seconds = time.perf_counter() - start
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        with Image.open(Path(tmp) / "out" / "big.png") as out:
            assert out.size == (w, h)
    result = {"command": "bench/peak_memory.py", "size": args.size, "tile": args.tile, "peak_rss_mb": round(peak_mb),
              "seconds": round(seconds, 1), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs"}
    print(json.dumps(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
