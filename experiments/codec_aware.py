"""Codec-aware against blind (issue #8): two models of the same architecture, data and training,
one told the quantiser (revamp.codec), one not, on LIVE1 and on the video clips.

    .venv/bin/python experiments/codec_aware.py --blind runs/fast-cpu5/generator/best.safetensors \\
        --aware runs/fast-aware-cpu5/generator/best.safetensors [--shared ../shared] [--out results/codec-aware-gpu5]

Each model is told what the file would tell `revamp`: the JPEG tables (for `jpeg-resaved`, JPEG at
q, shifted 4 px and saved again at q90: the tables of q90), the intra frame's QP for H.264 (QP 22
for `h264-reencoded`: damaged at the QP given, then encoded again at QP 22); H.265 stays blind
(FFmpeg exports no HEVC quantisers). Writes summary.md (the tables below) and the per-image CSVs
of `revamp eval` under --out.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from revamp.evaluation.images import evaluate, parse_degradations
from revamp.evaluation.video import evaluate_video
from revamp.inference.restorer import Restorer

IMAGE = ["jpeg:10,20,30,40", "jpeg-resaved:10,20", "h264:27,32,37,42", "h264-reencoded:37"]
VIDEO = ["h264:27,32,37,42", "h265:37", "h264-reencoded:37"]


def compare(blind: str, aware: str, shared: Path, out: Path, limit: int | None = None, max_frames: int = 30) -> list[str]:
    models = {"blind": Restorer(blind, device="cpu"), "aware": Restorer(aware, device="cpu")}
    if models["blind"].codec_aware or not models["aware"].codec_aware:
        raise SystemExit("--blind must be a blind model and --aware a codec-aware one")
    s = evaluate(models, shared / "data" / "eval" / "live1", parse_degradations(IMAGE), ["psnr", "ssim", "lpips"], "rgb", 0,
                 out / "live1", baseline="none", limit=limit)
    by = {(r["degradation"], r["method"]): r for r in s["results"]}
    lines = [f"Blind: `{blind}`; codec-aware: `{aware}`.", "",
             f"LIVE1 colour, {s['images']} images, RGB, no crop: PSNR dB / SSIM / LPIPS", "",
             "| degradation | input | blind | codec-aware | PSNR gain of codec-aware |", "|---|---|---|---|---|"]
    for degradation in dict.fromkeys(d for d, _ in by):
        source = next(m for d, m in by if d == degradation)  # the compressed input's row comes first
        rows = [by[(degradation, m)] for m in (source, "blind", "aware")]
        cells = [f"{r['psnr']:.2f} / {r['ssim']:.4f} / {r['lpips']:.4f}" for r in rows]
        lines.append(f"| {degradation} | " + " | ".join(cells) + f" | {rows[2]['psnr'] - rows[1]['psnr']:+.2f} |")
    jpeg_gains = [by[(d, "aware")]["psnr"] - by[(d, "blind")]["psnr"] for d, m in by if d.startswith("jpeg:") and m == "aware"]
    lines += ["", f"Mean PSNR gain of the codec-aware model at JPEG q10-40: {sum(jpeg_gains) / len(jpeg_gains):+.3f} dB."]
    clips = shared / "data" / "video"
    if clips.is_dir():
        v = evaluate_video(models, clips, parse_degradations(VIDEO), out / "video", stabilize=0.0, max_frames=max_frames, baseline="none")
        vby = {(r["degradation"], r["method"]): r for r in v["rows"]}
        names = ", ".join(f"{c['name']} ({c['size']}, {c['frames']} frames)" for c in v["clips"])
        lines += ["", f"Video clips ({names}; Y PSNR, mean over frames and clips, no stabiliser): ΔPSNR-Y against the compressed input",
                  "", "| degradation | compressed Y PSNR | blind | codec-aware | gain of codec-aware |", "|---|---|---|---|---|"]
        for degradation in dict.fromkeys(d for d, _ in vby):
            base, b, a = (vby[(degradation, m)]["psnr_y"] for m in ("compressed", "blind", "aware"))
            lines.append(f"| {degradation} | {base:.2f} | {b - base:+.2f} | {a - base:+.2f} | {a - b:+.2f} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blind", required=True, help="blind model (name or .safetensors)")
    parser.add_argument("--aware", required=True, help="codec-aware model of the same size")
    parser.add_argument("--shared", default="../shared")
    parser.add_argument("--out", default="results/codec-aware")
    parser.add_argument("--limit", type=int, help="only the first N LIVE1 images")
    args = parser.parse_args()
    out = Path(args.out)
    lines = compare(args.blind, args.aware, Path(args.shared), out, args.limit)
    text = "\n".join(lines) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
