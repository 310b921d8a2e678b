"""The neighbours' gate tolerance against the codec's quantiser: how the step gate of
revamp.video.neighbours (gate_tolerance, GATE_FRACTION, GATE_POWER) was chosen, and what it gives.

    .venv/bin/python bench/neighbour_gate.py [--codecs h264,h265,mpeg2,mpeg4] [--json FILE]

Each training clip (../shared/data/video/train_clips; never Vid4), its first 17 frames cropped to
the middle 192 px square, goes through one IPB stream at constant QP/qscale (as `revamp eval
--video` compresses). For every frame with two neighbours on each side: the plain mean of the
decoded frame and its four neighbours, each aligned and gated over 7 x 7 patches (the
`video-quality-wide` model's window) at a fixed tolerance from a grid, and at the step gate's
tolerance for the frame's mean quantiser step. Printed per codec and quantiser: the mean step and
ΔPSNR-Y of that mean over the decoded frame (BT.601 Y, no crop, mean over frames and clips). The
mean is what the planes hold for a model to use, not a restoration.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from neighbour_information import SIZE, centre_crops
from training_clips import ROOT, label, mean_psnr_y

from revamp.data.degrade import video_roundtrip
from revamp.video.flow import Warps
from revamp.video.neighbours import TOLERANCE, align, gate_tolerance

FRAMES, WINDOW, SIDE = 17, 7, 2
QUANTISERS = {"h264": (22, 27, 32, 37, 42), "h265": (22, 27, 32, 37, 42), "mpeg2": (4, 6, 10, 16, 20), "mpeg4": (4, 6, 10, 16, 20)}
TOLERANCES = (0.015, 0.02, 0.03, 0.04, TOLERANCE, 0.09, 0.13)


def gains(clip: list[np.ndarray], codec: str, q: int, warps: Warps) -> tuple[list[float], dict[str, list[float]]]:
    """The clip's frames' steps, and per tolerance the ΔPSNR-Y of each frame's mean with its neighbours."""
    steps: list[float] = []
    decoded = video_roundtrip(clip, codec, q, steps=steps)
    out: dict[str, list[float]] = {}
    for m in range(SIDE, len(clip) - SIDE):
        frame, base = decoded[m], decoded[m].astype(np.float32) / 255
        before = mean_psnr_y([frame], [clip[m]])
        for name, tolerance in [(f"{t:g}", t) for t in TOLERANCES] + [("step gate", gate_tolerance(codec, steps[m]))]:
            aligned = [align(frame, decoded[m + o], warps, WINDOW, tolerance)[0] for o in (-2, -1, 1, 2)]
            out.setdefault(name, []).append(mean_psnr_y([(base + sum(aligned)) / 5], [clip[m]]) - before)
    return steps[SIDE : len(clip) - SIDE], out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "video" / "train_clips"))
    ap.add_argument("--codecs", default=",".join(QUANTISERS))
    ap.add_argument("--json")
    args = ap.parse_args()
    clips, warps = centre_crops(Path(args.data), FRAMES), Warps()
    rows = []
    for codec in args.codecs.split(","):
        for q in QUANTISERS[codec]:
            steps: list[float] = []
            per: dict[str, list[float]] = {}
            for clip in clips:
                s, g = gains(clip, codec, q, warps)
                steps += s
                for k, v in g.items():
                    per.setdefault(k, []).extend(v)
            row = {"degradation": label(codec, q), "mean step": round(float(np.mean(steps)), 1),
                   "step gate tolerance": round(float(np.mean([gate_tolerance(codec, s) for s in steps])), 4),
                   **{k: round(float(np.mean(v)), 4) for k, v in per.items()}}
            print(json.dumps(row), flush=True)
            rows.append(row)
    if args.json:
        Path(args.json).write_text(json.dumps({"data": args.data, "frames": FRAMES, "crop": SIZE, "window": WINDOW, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
