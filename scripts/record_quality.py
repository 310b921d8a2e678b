"""Write src/revamp/weights/measured.json, the quality line `revamp models` shows for each shipped
model, from the summaries the evaluation commands wrote (`make measured`): never typed by hand.

    .venv/bin/python scripts/record_quality.py
"""
from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "src/revamp/weights/measured.json"
# model -> (summary written by `make measured`, degradation, what the line says)
IMAGE_SOURCES = {
    "default": ("docs/eval/shipped-live1/summary.json", "jpeg:20", "LIVE1 colour q20, RGB PSNR / LPIPS"),
    "full": ("docs/eval/shipped-live1/summary.json", "jpeg:20", "LIVE1 colour q20, RGB PSNR / LPIPS"),
    "full-psnr": ("docs/eval/shipped-live1/summary.json", "jpeg:20", "LIVE1 colour q20, RGB PSNR / LPIPS"),
    "sr2x": ("docs/eval/shipped-set14-x2/summary.json", "jpeg:40", "Set14 x2 of JPEG q40, Y PSNR / LPIPS (crop 2)"),
    "sr4x": ("docs/eval/shipped-set14-x4/summary.json", "jpeg:40", "Set14 x4 of JPEG q40, Y PSNR / LPIPS (crop 4)"),
}
# model -> (summary of its 18-row Vid4 run, the rows the line quotes)
VIDEO_SOURCES = {
    "video": ("docs/eval/vid4-video/summary.json", ("h264 QP37", "h265 QP37")),
    "video-quality": ("docs/eval/vid4-video-quality/summary.json", ("h264 QP37", "h265 QP37")),
}


def image_line(source: str, degradation: str, what: str, model: str) -> str:
    rows = [r for r in json.loads((REPO / source).read_text())["results"] if r["degradation"] == degradation]
    base = next(r for r in rows if r["method"].endswith("(input)") or r["method"].startswith("bicubic"))
    mine = next(r for r in rows if r["method"] == model)
    label = "bicubic" if base["method"].startswith("bicubic") else degradation.split(":")[0].upper()
    return f"{what}: {label} {base['psnr']:.2f} / {base['lpips']:.3f} -> {mine['psnr']:.2f} / {mine['lpips']:.3f}"


def video_line(model: str, source: str, degradations: tuple[str, ...]) -> str:
    rows = json.loads((REPO / source).read_text())["rows"]
    gains = []
    for degradation in degradations:
        row = next(r for r in rows if r["degradation"] == degradation and r["method"].startswith(f"{model} + stabiliser"))
        gains.append(f"{degradation.replace('h26', 'H.26').replace(' QP37', '')} {row['delta_psnr_y']:+.2f} dB")
    return f"Vid4 QP37, PSNR-Y gain over the input with the stabiliser: {', '.join(gains)}"


def measured() -> dict[str, dict[str, str]]:
    """Each shipped model's quality line and the summary it comes from."""
    lines = {model: {"quality": image_line(*spec, model), "source": spec[0]} for model, spec in IMAGE_SOURCES.items()}
    for model, (source, degradations) in VIDEO_SOURCES.items():
        lines[model] = {"quality": video_line(model, source, degradations), "source": source}
    return lines


def main() -> None:
    measured_now = measured()
    OUT.write_text(json.dumps(measured_now, indent=1) + "\n")
    for name, entry in measured_now.items():
        print(f"{name}: {entry['quality']}")


if __name__ == "__main__":
    main()
