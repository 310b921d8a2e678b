"""What a GAN phase does at edges: a pre-GAN generator against post-GAN models, image by image.

    .venv/bin/python bench/gan_edges.py --before PRE.safetensors --after [LABEL=]POST.safetensors [--after ...]
        [--data ../shared/data/eval/live1] [--quality 20] [--json FILE] [--figure FILE.jpg]

Each clean image is saved as a JPEG at ``--quality`` (PIL, 4:2:0) and restored by every model.
Per image: PSNR and LPIPS (RGB) over the whole picture and over its edge region (the dilated
Canny edges of the original, revamp.metrics.edge_mask), NIQE and BRISQUE, for the input and each
model. Reported:
the means, and for each post-GAN model its paired differences against the pre-GAN one (mean,
standard error over images, how many images improve). The figure shows, for the image where the
first post-GAN model gains most in edge LPIPS, a 96x96 crop around the most edge-dense window,
at 3x (nearest): original, JPEG, pre-GAN, each post-GAN.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from revamp.evaluation.images import METRICS
from revamp.inference.restorer import Restorer
from revamp.metrics import edge_mask

MEASURES = ("psnr", "lpips", "edge-psnr", "edge-lpips", "niqe", "brisque")
LOWER_IS_BETTER = {"lpips", "edge-lpips", "niqe", "brisque"}
CROP, ZOOM = 96, 3


def _window(mask: np.ndarray) -> tuple[slice, slice]:
    """The CROP x CROP window with the most edge pixels (an integral image over the mask)."""
    s = np.pad(mask.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    counts = s[CROP:, CROP:] - s[:-CROP, CROP:] - s[CROP:, :-CROP] + s[:-CROP, :-CROP]
    y, x = np.unravel_index(np.argmax(counts), counts.shape)
    return slice(y, y + CROP), slice(x, x + CROP)


def figure(crops: list[tuple[str, np.ndarray]], path: Path) -> None:
    w = CROP * ZOOM
    sheet = Image.new("RGB", (w * len(crops), w + 18), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (label, crop) in enumerate(crops):
        sheet.paste(Image.fromarray(crop).resize((w, w), Image.NEAREST), (i * w, 18))
        draw.text((i * w + 4, 3), label, fill="black")
    sheet.save(path, quality=95, subsampling=0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the pre-GAN generator")
    parser.add_argument("--after", action="append", required=True, help="[LABEL=]FILE: a post-GAN model (repeat to compare)")
    parser.add_argument("--data", default="../shared/data/eval/live1")
    parser.add_argument("--quality", type=int, default=20)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--json")
    parser.add_argument("--figure")
    args = parser.parse_args()
    files = sorted(p for p in Path(args.data).iterdir() if p.suffix.lower() in {".png", ".bmp", ".tif"})[: args.limit]
    models = {"pre-GAN": args.before}
    for i, spec in enumerate(args.after):
        label, _, path = spec.rpartition("=")
        models[label or f"post-GAN {i + 1}"] = path
    restorers = {name: Restorer(path, device="cpu") for name, path in models.items()}
    rows: dict[str, list[dict]] = {name: [] for name in ["JPEG", *models]}
    pictures = []
    for path in files:
        clean = np.asarray(Image.open(path).convert("RGB"))
        buf = io.BytesIO()
        Image.fromarray(clean).save(buf, "JPEG", quality=args.quality)
        decoded = np.asarray(Image.open(buf).convert("RGB"))
        outs = {"JPEG": decoded}
        for name, restorer in restorers.items():
            outs[name] = (np.clip(restorer.restore_rgb(decoded.astype(np.float32) / 255), 0, 1) * 255 + 0.5).astype(np.uint8)
        for name, out in outs.items():
            rows[name].append({m: METRICS[m](out, clean) for m in MEASURES})
        pictures.append((path.name, clean, outs))
        print(path.name, flush=True)

    def mean(name: str, m: str) -> float:
        return round(float(np.mean([r[m] for r in rows[name]])), 4)

    result = {"command": f"bench/gan_edges.py --before {args.before} " + " ".join(f"--after {a}" for a in args.after)
                         + f" --data {args.data} --quality {args.quality}" + (f" --limit {args.limit}" if args.limit else ""),
              "images": len(files), "means": {name: {m: mean(name, m) for m in MEASURES} for name in rows}, "paired": {}}
    for name in list(models)[1:]:
        paired = {}
        for m in MEASURES:
            d = np.array([a[m] - b[m] for a, b in zip(rows[name], rows["pre-GAN"])])
            better = d < 0 if m in LOWER_IS_BETTER else d > 0
            paired[m] = {"mean": round(float(d.mean()), 4), "stderr": round(float(d.std(ddof=1) / np.sqrt(len(d))), 4),
                         "images_better": int(better.sum())}
        result["paired"][name] = paired
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    if args.figure:
        first = list(models)[1]
        gains = [b["edge-lpips"] - a["edge-lpips"] for a, b in zip(rows[first], rows["pre-GAN"])]
        name, clean, outs = pictures[int(np.argmax(gains))]
        window = _window(edge_mask(clean))
        figure([(f"original ({name})", clean[window]), (f"JPEG q{args.quality}", outs["JPEG"][window])]
               + [(label, outs[label][window]) for label in models], Path(args.figure))
    return 0


if __name__ == "__main__":
    sys.exit(main())
