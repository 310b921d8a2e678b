"""The stabiliser's mix and look-ahead: how the defaults in revamp.defaults (STABILIZE) and
revamp.video.stabilize (LOOK_AHEAD) were chosen, and what they give.

    .venv/bin/python bench/stabilizer_look_ahead.py [--data DIR] [--model video] [--json FILE]

Each clip of DATA (default ../shared/data/video/train_clips: tuning is done on training clips,
never on Vid4) is compressed as `revamp eval --video` does (one IPB stream, constant QP/qscale)
and restored frame by frame once; the stabiliser then runs over the restorations, with the
tolerance rule of `revamp video`, at each mix and look-ahead of the grid (look-ahead 0: the
forward pass alone). Printed: ΔPSNR-Y over the compressed input (BT.601 Y, no crop, mean over
frames, then over clips) for every setting, and frame by frame.
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
MIXES = (0.4, 0.5, 0.6, 0.7)
LOOK_AHEADS = (0, 1, 2, 3, 5)
DEGRADATIONS = [("h264", 27), ("h264", 32), ("h264", 37), ("h264", 42), ("mpeg2", 6), ("mpeg2", 10), ("mpeg2", 16),
                ("h265", 27), ("h265", 32), ("h265", 37), ("h265", 42)]


def mean_psnr_y(frames: list[np.ndarray], refs: list[np.ndarray]) -> float:
    return float(np.mean([psnr((np.clip(f, 0, 1) * 255 + 0.5).astype(np.uint8) if f.dtype != np.uint8 else f, r, channel="y")
                          for f, r in zip(frames, refs)]))


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
        for refs in clips.values():
            steps: list[float] = []
            comp = video_roundtrip(refs, kind, q, steps=steps)
            hints = clip_hints(kind, steps, *refs[0].shape[:2])
            raw = [restorer.restore_rgb(c.astype(np.float32) / 255, hint=h) for c, h in zip(comp, hints)]
            tolerances = [blend_tolerance(VIDEO_CODECS[kind][1], h) for h in hints]
            base = mean_psnr_y(comp, refs)
            gains.setdefault("frame by frame", []).append(mean_psnr_y(raw, refs) - base)
            for mix in MIXES:
                for look_ahead in LOOK_AHEADS:
                    out = stabilize_clip(TemporalStabilizer(mix, look_ahead=look_ahead), comp, raw, tolerances)
                    gains.setdefault(f"mix {mix:g} look-ahead {look_ahead}", []).append(mean_psnr_y(out, refs) - base)
        row = {"degradation": f"{kind} {'QP' if kind.startswith('h26') else 'q'}{q}", **{k: round(float(np.mean(v)), 4) for k, v in gains.items()}}
        rows.append(row)
        print(json.dumps(row), flush=True)
    mean = {k: round(float(np.mean([r[k] for r in rows])), 4) for k in rows[0] if k != "degradation"}
    print(json.dumps({"mean over degradations": mean}), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"data": args.data, "model": args.model, "frames": args.frames, "rows": rows, "mean": mean,
                                               "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"}, indent=1))


if __name__ == "__main__":
    main()
