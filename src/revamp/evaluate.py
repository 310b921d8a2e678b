"""`revamp eval`: degrade a folder of clean images, restore them, measure against the originals.

Conventions (those of the deblocking literature): JPEG made with libjpeg
through PIL (IJG quality, 4:2:0 for colour), 8-bit rounding of every output,
PSNR/SSIM/PSNR-B on RGB or on BT.601 Y (``--channel``), no border crop unless
``--crop``. Grayscale datasets are compressed and measured as one channel.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from revamp.data.degrade import jpeg
from revamp.metrics import psnr, psnr_b, ssim

def _lpips(restored, reference, channel: str = "rgb", crop: int = 0) -> float:
    """LPIPS-alex v0.1 on the RGB images (the channel setting does not apply to it)."""
    from revamp.metrics.lpips import lpips

    if crop:
        restored, reference = restored[crop:-crop, crop:-crop], reference[crop:-crop, crop:-crop]
    return lpips(restored, reference, "alex")


METRICS = {"psnr": psnr, "ssim": ssim, "psnr-b": psnr_b, "lpips": _lpips}


def parse_degradations(specs: list[str]) -> list[tuple[str, int]]:
    out = []
    for spec in specs:
        kind, _, values = spec.partition(":")
        if kind != "jpeg" or not values:
            raise ValueError(f"bad --degrade {spec!r}: use jpeg:Q[,Q...], e.g. jpeg:10,20,30,40")
        for v in values.split(","):
            q = int(v)
            if not 1 <= q <= 100:
                raise ValueError(f"JPEG quality must be 1..100, got {q}")
            out.append((kind, q))
    return out


def jpeg_gray(img: np.ndarray, q: int) -> np.ndarray:
    import io

    buf = io.BytesIO()
    Image.fromarray(img, "L").save(buf, format="JPEG", quality=q)
    buf.seek(0)
    return np.asarray(Image.open(buf))


def load_clean(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("L") if im.mode in ("L", "I;16", "1") else im.convert("RGB"))


def evaluate(models: dict[str, object], data: Path, degradations: list[tuple[str, int]], metrics: list[str],
             channel: str, crop: int, out: Path, quiet: bool = False) -> dict:
    files = sorted(p for p in data.iterdir() if p.suffix.lower() in (".png", ".bmp", ".tif", ".tiff", ".jpg"))
    if not files:
        raise ValueError(f"no images in {data}")
    unknown = set(metrics) - set(METRICS)
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(sorted(unknown))}; available: {', '.join(METRICS)}")
    rows = []
    total = len(files) * len(degradations)
    bar = tqdm(total=total, desc="evaluating", unit="img", disable=quiet, dynamic_ncols=True)
    for path in files:
        clean = load_clean(path)
        for kind, q in degradations:
            degraded = jpeg_gray(clean, q) if clean.ndim == 2 else jpeg(clean, q)
            outputs = {"JPEG (input)": degraded}
            for name, restorer in models.items():
                outputs[name] = restorer.restore(degraded)
            for method, img in outputs.items():
                row = {"image": path.name, "degradation": f"{kind}:{q}", "method": method}
                for m in metrics:
                    row[m] = round(METRICS[m](img, clean, channel=channel, crop=crop), 4)
                rows.append(row)
            bar.update(1)
    bar.close()
    out.mkdir(parents=True, exist_ok=True)
    with (out / "per_image.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    summary: dict = {"data": str(data), "images": len(files), "channel": channel, "crop": crop, "metrics": metrics, "results": []}
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for kind, q in degradations:
        for method in methods:
            sel = [r for r in rows if r["method"] == method and r["degradation"] == f"{kind}:{q}"]
            summary["results"].append({"degradation": f"{kind}:{q}", "method": method, **{m: round(float(np.mean([r[m] for r in sel])), 4) for m in metrics}})
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    (out / "summary.md").write_text(summary_markdown(summary))
    return summary


def summary_markdown(summary: dict) -> str:
    metrics = summary["metrics"]
    lines = [
        f"Data: `{summary['data']}` ({summary['images']} images), channel {summary['channel'].upper()}, border crop {summary['crop']} px.",
        "",
        "| degradation | method | " + " | ".join(metrics) + " |",
        "|---|---|" + "---|" * len(metrics),
    ]
    for r in summary["results"]:
        lines.append(f"| {r['degradation']} | {r['method']} | " + " | ".join(f"{r[m]:.4f}" if m in ("ssim", "lpips") else f"{r[m]:.2f}" for m in metrics) + " |")
    return "\n".join(lines) + "\n"
