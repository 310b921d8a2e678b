"""The stabiliser's lean towards finer-quantised neighbours: how QUALITY_POWER in
revamp.video.stabilize was chosen, and what it gives.

    .venv/bin/python bench/stabilizer_quality.py [--data DIR] [--model video] [--json FILE]

Each clip of DATA (default ../shared/data/video/train_clips) is compressed and restored frame by
frame once as `revamp video` restores it (bench/training_clips.py); the stabiliser (the default
mix and look-ahead, the tolerance rule of `revamp video`) then runs over the restorations with
each power of the grid (0: every neighbour weighted alike). Printed: ΔPSNR-Y over the compressed
input (BT.601 Y, no crop, mean over frames, then over clips). H.265 and the constant-qscale
MPEG-2 streams have one tolerance for every frame, so the power changes nothing there.
"""
from __future__ import annotations

import json

import numpy as np
from training_clips import arguments, label, mean_psnr_y, restored_clips, write_json

from revamp.data.degrade import VIDEO_CODECS
from revamp.video.stabilize import TemporalStabilizer, blend_tolerance, stabilize_clip

POWERS = (0.0, 0.5, 1.0, 2.0)


def main() -> None:
    args = arguments(__doc__)
    rows = []
    for kind, q, clips in restored_clips(args):
        if kind != "h264":  # one tolerance for every frame: nothing to compare
            continue
        gains: dict[str, list[float]] = {}
        for refs, comp, _, hints, raw in clips:
            tolerances = [blend_tolerance(VIDEO_CODECS[kind][1], h) for h in hints]
            base = mean_psnr_y(comp, refs)
            gains.setdefault("frame by frame", []).append(mean_psnr_y(raw, refs) - base)
            for power in POWERS:
                out = stabilize_clip(TemporalStabilizer(quality_power=power), comp, raw, tolerances)
                gains.setdefault(f"power {power:g}", []).append(mean_psnr_y(out, refs) - base)
        row = {"degradation": label(kind, q), **{k: round(float(np.mean(v)), 4) for k, v in gains.items()}}
        rows.append(row)
        print(json.dumps(row), flush=True)
    write_json(args, rows=rows)


if __name__ == "__main__":
    main()
