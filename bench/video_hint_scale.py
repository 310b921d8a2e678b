"""The quantiser step a codec-aware model is told for a video frame: how VIDEO_HINT_SCALE in
revamp.defaults was chosen, and what it gives.

    .venv/bin/python bench/video_hint_scale.py [--data DIR] [--model video] [--json FILE]

Each clip of DATA (default ../shared/data/video/train_clips) is compressed as `revamp eval
--video` does, at each H.264 and MPEG-2 degradation of bench/training_clips.py (H.265 is left
out: FFmpeg reports no HEVC quantisers, so the model runs blind on it), and restored frame by
frame with the frame's reported step times each scale of the grid. Printed: ΔPSNR-Y over the
compressed input (BT.601 Y, no crop, mean over frames, then over clips) per scale.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from training_clips import DEGRADATIONS, arguments, label, mean_psnr_y, write_json

from revamp.data.degrade import video_roundtrip
from revamp.evaluation.video import clip_hints, load_clips
from revamp.inference.restorer import Restorer

SCALES = (1.0, 0.7, 0.5, 0.35)


def main() -> None:
    args = arguments(__doc__)
    clips = load_clips(Path(args.data), args.frames)
    restorer = Restorer(args.model, backend="torch")
    rows = []
    for kind, q in [(kind, q) for kind, q in DEGRADATIONS if kind != "h265"]:
        gains: dict[str, list[float]] = {}
        for refs in clips.values():
            steps: list[float] = []
            comp = video_roundtrip(refs, kind, q, steps=steps)
            hints = clip_hints(kind, steps, *refs[0].shape[:2])
            base = mean_psnr_y(comp, refs)
            for scale in SCALES:
                out = [restorer.restore_rgb(c.astype(np.float32) / 255, hint=h.scaled(scale)) for c, h in zip(comp, hints)]
                gains.setdefault(f"{scale:g}", []).append(mean_psnr_y(out, refs) - base)
        row = {"degradation": label(kind, q), **{k: round(float(np.mean(v)), 4) for k, v in gains.items()}}
        rows.append(row)
        print(json.dumps(row), flush=True)
    mean = {k: round(float(np.mean([r[k] for r in rows])), 4) for k in rows[0] if k != "degradation"}
    print(json.dumps({"mean over degradations": mean}), flush=True)
    write_json(args, rows=rows, mean=mean)


if __name__ == "__main__":
    main()
