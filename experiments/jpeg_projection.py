"""Does projecting a restored picture back onto what its JPEG file allows help? (issue #8)

A JPEG file fixes every 8x8 luma DCT coefficient to an interval: the true coefficient rounded to
k steps, so it lies in [(k - 1/2) q, (k + 1/2) q]. Clipping the restored picture's coefficients
to those intervals (the classic quantisation-constraint projection, POCS deblocking) can only move
its luma closer to the truth, if the truth is inside. This measures how much that adds to a
network's output on LIVE1, and how often the truth really lies inside the intervals read back
from the decoded pixels.

    .venv/bin/python experiments/jpeg_projection.py --model default [--limit 8] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.fft import idctn

from revamp.codec import CodecHint, block_dct, ijg_table, jpeg_luma, jpeg_step
from revamp.data.degrade import jpeg
from revamp.inference.restorer import Restorer
from revamp.metrics.fidelity import psnr


def luma_dct(rgb: np.ndarray) -> np.ndarray:
    return block_dct(jpeg_luma(rgb))


def project(restored: np.ndarray, decoded: np.ndarray, table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Clip the restored luma's coefficients to the intervals of the decoded JPEG's (k read back by
    rounding); the luma change is added to R, G and B alike. Returns the picture and k."""
    k = np.round(luma_dct(decoded) / table)
    coeffs = luma_dct(restored)
    change = idctn(np.clip(coeffs, (k - 0.5) * table, (k + 0.5) * table) - coeffs, axes=(2, 3), norm="ortho")
    rows, cols = change.shape[:2]
    out = restored.astype(np.float64)
    out[: rows * 8, : cols * 8] += change.transpose(0, 2, 1, 3).reshape(rows * 8, cols * 8)[..., None]
    return np.clip(out, 0, 255), k


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/eval/live1"))
    parser.add_argument("--qualities", default="10,20,30,40")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    restorer = Restorer(args.model, device="cpu")
    files = sorted(args.data.glob("*.png"))[: args.limit]
    rows = []
    for q in map(int, args.qualities.split(",")):
        table = ijg_table(q).astype(np.float64)
        scores = {"jpeg": [], "restored": [], "projected": [], "truth_inside": []}
        for path in files:
            clean = np.asarray(Image.open(path).convert("RGB"))
            decoded = jpeg(clean, q)
            hint = CodecHint.constant(jpeg_step(table), *decoded.shape[:2], "JPEG tables")
            restored = restorer.restore_rgb(decoded.astype(np.float32) / 255, hint=hint) * 255
            projected, k = project(restored, decoded, table)
            inside = np.abs(luma_dct(clean) - k * table) <= table / 2 + 1e-9
            # Restored pictures are scored as the 8-bit files they would be written to.
            for name, value in (("jpeg", psnr(decoded, clean)), ("restored", psnr(np.round(restored), clean)),
                                ("projected", psnr(np.round(projected), clean)), ("truth_inside", float(inside.mean()))):
                scores[name].append(value)
        row = {"quality": q, **{name: round(float(np.mean(v)), 4) for name, v in scores.items()}}
        rows.append(row)
        print(f"q{q}: JPEG {row['jpeg']:.3f} dB, restored {row['restored']:.3f}, projected {row['projected']:.3f} "
              f"({row['projected'] - row['restored']:+.3f}); truth inside the intervals: {100 * row['truth_inside']:.2f} %", flush=True)
    if args.json:
        report = {"command": "experiments/jpeg_projection.py " + " ".join(sys.argv[1:]), "model": args.model, "images": len(files),
                  "channel": "rgb", "rows": rows}
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
