"""Where in the GOP a model gains: ΔPSNR-Y per frame quantiser level (I, P, reference B, B frames).

    .venv/bin/python bench/frame_types.py [--model video] [--data ../shared/data/video/vid4]
        [--degrade h264:37 --degrade h265:37] [--stabilize 0] [--max-frames 12] [--json FILE]

Each clip goes through the codec as `revamp eval --video` sends it (the same encoder settings and
exact or fast RGB per model) and is restored frame by frame (``--stabilize S``: with the temporal
stabiliser at mix S instead); each frame's gain is PSNR of its written Y plane minus PSNR of the
decoded Y plane, both against BT.601 Y of the original. Frames are grouped by the quantiser step
the decoder reports for them (x264/x265 code I frames finer than P frames, and P frames finer
than B frames), each group's mean over all clips.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np

from revamp.data.degrade import video_roundtrip
from revamp.evaluation.video import clip_hints, load_clips, restore_clip, written_luma
from revamp.inference.restorer import Restorer
from revamp.metrics import psnr, rgb_to_y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="model name or file (repeat to compare; default video)")
    parser.add_argument("--data", default="../shared/data/video/vid4")
    parser.add_argument("--degrade", action="append", help="CODEC:QP (default h264:37 and h265:37)")
    parser.add_argument("--stabilize", type=float, default=0.0, help="stabiliser mix (default 0: frame by frame)")
    parser.add_argument("--max-frames", type=int, default=12)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    clips = load_clips(Path(args.data), args.max_frames)
    results = []
    for model in args.model or ["video"]:
        restorer = Restorer(model, backend="torch")
        for spec in args.degrade or ["h264:37", "h265:37"]:
            kind, q = spec.split(":")
            groups: dict[float, list[tuple[float, float]]] = {}
            for refs in clips.values():
                steps, luma, fast = [], [], []
                exact = video_roundtrip(refs, kind, int(q), steps=steps, luma=luma, fast=fast)
                hints = clip_hints(kind, steps, *refs[0].shape[:2])
                out = written_luma(restore_clip(restorer, exact if restorer.exact_video_rgb else fast, args.stabilize, hints, kind=kind))
                for restored, decoded, ref, step in zip(out, luma, refs, steps):
                    y = rgb_to_y(ref)
                    before = psnr(decoded.astype(np.float64), y)
                    groups.setdefault(round(step, 1), []).append((before, psnr(restored.astype(np.float64), y) - before))
            rows = [{"model": model, "degrade": spec, "stabilize": args.stabilize, "step": s, "frames": len(g),
                     "psnr_y": round(float(np.mean([b for b, _ in g])), 3), "gain": round(float(np.mean([d for _, d in g])), 3)}
                    for s, g in sorted(groups.items())]
            results += rows
            for r in rows:
                print(f"{model} {spec}: step {r['step']:5.1f}  {r['frames']:3d} frames  PSNR-Y {r['psnr_y']:.2f}  gain {r['gain']:+.3f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"command": shlex.join(["bench/frame_types.py", *sys.argv[1:]]), "data": args.data, "max_frames": args.max_frames, "rows": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
