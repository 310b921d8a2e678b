"""What `--strength` does: one model, one set of JPEG files, strengths 0 to 2.

    .venv/bin/python bench/strength.py [--model default] [--data ../shared/data/eval/live1]
        [--quality 10] [--json FILE] [--figure FILE.png]

Each clean image is saved as a JPEG at ``--quality`` and restored from that file (a codec-aware
model reads its tables) at every strength. Reported per strength, as means over the images: PSNR
against the original (RGB), PSNR against the JPEG input (strength 0 gives the input back) and the
high-frequency energy of the output, the mean squared response of a 3x3 Laplacian on BT.601 Y
(smoothing lowers it); and the mean absolute difference between the outputs at 0.5 and 1.5, in
grey levels (0-255). The figure shows a crop of the first image at each strength beside the
JPEG and the original.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy.ndimage import laplace

from revamp.codec import hint_for_image
from revamp.inference.restorer import Restorer
from revamp.metrics import psnr, rgb_to_y

STRENGTHS = (0.0, 0.5, 1.0, 1.5, 2.0)


def high_frequency_energy(rgb: np.ndarray) -> float:
    return float(np.mean(laplace(rgb_to_y(rgb).astype(np.float64)) ** 2))


def figure(crops: list[tuple[str, np.ndarray]], path: Path) -> None:
    h, w = crops[0][1].shape[:2]
    sheet = Image.new("RGB", (w * len(crops), h + 18), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (label, crop) in enumerate(crops):
        sheet.paste(Image.fromarray(crop), (i * w, 18))
        draw.text((i * w + 4, 3), label, fill="black")
    sheet.save(path, quality=95, subsampling=0)  # JPEG options; other formats ignore them


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--data", default="../shared/data/eval/live1")
    parser.add_argument("--quality", type=int, default=10)
    parser.add_argument("--limit", type=int, default=10, help="images (default 10)")
    parser.add_argument("--json")
    parser.add_argument("--figure")
    args = parser.parse_args()
    files = sorted(p for p in Path(args.data).iterdir() if p.suffix.lower() in {".png", ".bmp", ".tif"})[: args.limit]
    restorers = {s: Restorer(args.model, device="cpu", strength=s) for s in STRENGTHS}
    rows: dict[float, list[tuple[float, float, float]]] = {s: [] for s in STRENGTHS}
    spread = []  # mean |out(0.5) - out(1.5)| per image, grey levels
    inputs = []
    crops = []
    for index, path in enumerate(files):
        clean = np.asarray(Image.open(path).convert("RGB"))
        buf = io.BytesIO()
        Image.fromarray(clean).save(buf, "JPEG", quality=args.quality)
        buf.seek(0)
        decoded = np.asarray(Image.open(buf).convert("RGB"))
        hint = hint_for_image(buf, None)  # the file's tables, as `revamp image` reads them
        inputs.append((psnr(decoded, clean), high_frequency_energy(decoded)))
        if index == 0:
            y, x = clean.shape[0] // 2 - 96, clean.shape[1] // 2 - 128
            window = (slice(y, y + 192), slice(x, x + 256))
            crops += [("original", clean[window]), (f"JPEG q{args.quality}", decoded[window])]
        outs = {}
        for s, restorer in restorers.items():
            out = restorer.restore_rgb(decoded.astype(np.float32) / 255, hint=hint)
            outs[s] = out8 = (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)
            rows[s].append((psnr(out8, clean), high_frequency_energy(out8), min(psnr(out8, decoded), 100.0)))
            if index == 0:
                crops.append((f"strength {s:g}", out8[window]))
        spread.append(float(np.abs(outs[0.5].astype(np.float64) - outs[1.5]).mean()))
        print(path.name, flush=True)
    result = {"command": f"bench/strength.py --model {args.model} --data {args.data} --quality {args.quality} --limit {args.limit}",
              "images": len(files),
              "jpeg": {"psnr": round(float(np.mean([p for p, _ in inputs])), 3), "hf_energy": round(float(np.mean([e for _, e in inputs])), 2)},
              "strengths": {f"{s:g}": {"psnr": round(float(np.mean([p for p, _, _ in v])), 3),
                                       "hf_energy": round(float(np.mean([e for _, e, _ in v])), 2),
                                       "psnr_vs_input": round(float(np.mean([i for _, _, i in v])), 2)}
                            for s, v in rows.items()},
              "mean_abs_difference_0.5_1.5": round(float(np.mean(spread)), 3)}
    energies = [result["strengths"][f"{s:g}"]["hf_energy"] for s in STRENGTHS]
    result["hf_energy_monotonic"] = all(a > b for a, b in zip(energies, energies[1:]))
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    if args.figure:
        figure(crops, Path(args.figure))
    return 0


if __name__ == "__main__":
    sys.exit(main())
