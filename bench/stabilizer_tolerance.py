"""The stabiliser's blending tolerance against the codec's quantiser: how the rule in
revamp.video.stabilize (blend_tolerance) was chosen, and what it gives.

    .venv/bin/python bench/stabilizer_tolerance.py [--data DIR] [--model video] [--json FILE]

Each clip of DATA (default ../shared/data/video/train_clips: tuning is done on training clips,
never on Vid4) is compressed as `revamp eval --video` does (one IPB stream, constant QP/qscale)
and restored frame by frame once; the stabiliser (its forward pass at strength 0.5) then runs
over the restorations with each fixed tolerance of a grid and with the rule (a fraction of each
frame's mean quantiser step for H.264/MPEG-2, BLIND_TOLERANCE for H.265, which `revamp video`
sees blind). Printed: the
mean quantiser step and ΔPSNR-Y over the compressed input (BT.601 Y, no crop, mean over frames,
then over clips) for every setting.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import numpy as np

from revamp.data.degrade import VIDEO_CODECS, video_roundtrip
from revamp.evaluation.video import clip_hints, load_clips
from revamp.inference.restorer import Restorer
from revamp.metrics import psnr
from revamp.video.stabilize import TemporalStabilizer, blend_tolerance, stabilize_clip

ROOT = Path(__file__).resolve().parents[1]
GRID = (0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.06, 0.08, 0.12)
DEGRADATIONS = [("h264", 27), ("h264", 32), ("h264", 37), ("h264", 42), ("mpeg2", 6), ("mpeg2", 10), ("mpeg2", 16),
                ("h265", 27), ("h265", 32), ("h265", 37), ("h265", 42)]


def stabilised_gain(comp, raw, refs, base: float, tolerances) -> float:
    # The forward pass at mix 0.5, as when the rule was chosen (bench/stabilizer_look_ahead.py: the look-ahead and mix).
    out = stabilize_clip(TemporalStabilizer(0.5, look_ahead=0), comp, raw, tolerances)  # new arrays: raw stays as it is
    return float(np.mean([psnr((np.clip(o, 0, 1) * 255 + 0.5).astype(np.uint8), y, channel="y") for o, y in zip(out, refs)])) - base


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "video" / "train_clips"))
    ap.add_argument("--model", default="video")
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--json")
    args = ap.parse_args()
    clips = load_clips(Path(args.data), args.frames)
    restorer = Restorer(args.model, backend="torch")
    rows = []
    for kind, q in DEGRADATIONS:
        gains: dict[str, list[float]] = {}
        steps_seen = []
        for refs in clips.values():
            steps: list[float] = []
            comp = video_roundtrip(refs, kind, q, steps=steps)
            hints = clip_hints(kind, steps, *refs[0].shape[:2])
            raw = [restorer.restore_rgb(c.astype(np.float32) / 255, hint=h) for c, h in zip(comp, hints)]
            base = float(np.mean([psnr(c, y, channel="y") for c, y in zip(comp, refs)]))
            steps_seen += steps
            for t in GRID:
                gains.setdefault(f"{t:g}", []).append(stabilised_gain(comp, raw, refs, base, [t] * len(comp)))
            rule = [blend_tolerance(VIDEO_CODECS[kind][1], h) for h in hints]
            gains.setdefault("rule", []).append(stabilised_gain(comp, raw, refs, base, rule))
            gains.setdefault("rule tolerance", []).append(float(np.mean(rule)))
            per_frame = float(np.mean([psnr((np.clip(r, 0, 1) * 255 + 0.5).astype(np.uint8), y, channel="y") for r, y in zip(raw, refs)]))
            gains.setdefault("no stabiliser", []).append(per_frame - base)
        row = {"degradation": f"{kind} {'QP' if kind.startswith('h26') else 'q'}{q}", "mean_step": round(float(np.mean(steps_seen)), 1),
               **{k: round(float(np.mean(v)), 4) for k, v in gains.items()}}
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"data": args.data, "model": args.model, "frames": args.frames, "rows": rows,
                                               "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"}, indent=1))


if __name__ == "__main__":
    main()
