"""Accuracy of revamp.codec.estimate_jpeg_quality (the quality of a JPEG read back from its
pixels alone, e.g. a PNG screenshot of it) on a folder of clean images.

    .venv/bin/python bench/codec_estimator.py [--data ../shared/data/eval/live1] [--json FILE]

Each image is saved with PIL at IJG quality 10, 20, ..., 90 (4:2:0), decoded to RGB, and the
quality is estimated from the RGB pixels. Reports the mean and max absolute error per quality,
and how the never-compressed originals read: `revamp` treats an estimate below 95 as "this was a
JPEG" (revamp.codec.hint_for_image), so an original read below 95 is a false alarm.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from revamp.codec import estimate_jpeg_quality


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/eval/live1")
    parser.add_argument("--json", help="also write the result to this file")
    args = parser.parse_args()
    files = sorted(p for p in Path(args.data).iterdir() if p.suffix.lower() in {".png", ".bmp", ".jpg", ".tif"})
    rows = {}
    for q in range(10, 100, 10):
        errors = []
        for f in files:
            buf = io.BytesIO()
            Image.open(f).convert("RGB").save(buf, "JPEG", quality=q)
            decoded = np.asarray(Image.open(buf).convert("RGB"))
            errors.append(abs(estimate_jpeg_quality(decoded) - q))
        rows[q] = {"mean_abs_error": round(float(np.mean(errors)), 2), "max_abs_error": int(np.max(errors)),
                   "exact": int(sum(e == 0 for e in errors))}
        print(q, rows[q], flush=True)
    originals = [estimate_jpeg_quality(np.asarray(Image.open(f).convert("RGB"))) for f in files]
    result = {"command": "bench/codec_estimator.py --data " + args.data, "images": len(files), "per_quality": rows,
              "mean_abs_error": round(float(np.mean([r["mean_abs_error"] for r in rows.values()])), 2),
              "originals_read_below_95": int(sum(q < 95 for q in originals)), "originals_min_estimate": int(min(originals))}
    print(json.dumps(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
