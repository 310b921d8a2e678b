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

import json

import numpy as np
from training_clips import arguments, label, mean_psnr_y, restored_clips, write_json

from revamp.data.degrade import VIDEO_CODECS
from revamp.video.stabilize import TemporalStabilizer, blend_tolerance, stabilize_clip

MIXES = (0.4, 0.5, 0.6, 0.7)
LOOK_AHEADS = (0, 1, 2, 3, 5)


def main() -> None:
    args = arguments(__doc__)
    rows = []
    for kind, q, clips in restored_clips(args):
        gains: dict[str, list[float]] = {}
        for refs, comp, _, hints, raw in clips:
            tolerances = [blend_tolerance(VIDEO_CODECS[kind][1], h) for h in hints]
            base = mean_psnr_y(comp, refs)
            gains.setdefault("frame by frame", []).append(mean_psnr_y(raw, refs) - base)
            for mix in MIXES:
                for look_ahead in LOOK_AHEADS:
                    out = stabilize_clip(TemporalStabilizer(mix, look_ahead=look_ahead, quality_power=0), comp, raw, tolerances)
                    gains.setdefault(f"mix {mix:g} look-ahead {look_ahead}", []).append(mean_psnr_y(out, refs) - base)
        row = {"degradation": label(kind, q), **{k: round(float(np.mean(v)), 4) for k, v in gains.items()}}
        rows.append(row)
        print(json.dumps(row), flush=True)
    mean = {k: round(float(np.mean([r[k] for r in rows])), 4) for k in rows[0] if k != "degradation"}
    print(json.dumps({"mean over degradations": mean}), flush=True)
    write_json(args, rows=rows, mean=mean)


if __name__ == "__main__":
    main()
