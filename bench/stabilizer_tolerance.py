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

import numpy as np
from training_clips import arguments, mean_psnr_y, restored_clips, summary_row, write_json

from revamp.data.degrade import VIDEO_CODECS
from revamp.video.stabilize import TemporalStabilizer, blend_tolerance, stabilize_clip

GRID = (0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.06, 0.08, 0.12)


def stabilised_gain(comp, raw, refs, base: float, tolerances) -> float:
    # The forward pass at mix 0.5, as when the rule was chosen (bench/stabilizer_look_ahead.py: the look-ahead and mix).
    out = stabilize_clip(TemporalStabilizer(0.5, look_ahead=0, quality_power=0), comp, raw, tolerances)  # new arrays: raw stays as it is
    return mean_psnr_y(out, refs) - base


def main() -> None:
    args = arguments(__doc__)
    rows = []
    for kind, q, clips in restored_clips(args):
        gains: dict[str, list[float]] = {}
        steps_seen = []
        for refs, comp, steps, hints, raw in clips:
            base = mean_psnr_y(comp, refs)
            steps_seen += steps
            for t in GRID:
                gains.setdefault(f"{t:g}", []).append(stabilised_gain(comp, raw, refs, base, [t] * len(comp)))
            rule = [blend_tolerance(VIDEO_CODECS[kind][1], h) for h in hints]
            gains.setdefault("rule", []).append(stabilised_gain(comp, raw, refs, base, rule))
            gains.setdefault("rule tolerance", []).append(float(np.mean(rule)))
            gains.setdefault("no stabiliser", []).append(mean_psnr_y(raw, refs) - base)
        rows.append(summary_row(kind, q, gains, mean_step=round(float(np.mean(steps_seen)), 1)))
    write_json(args, rows=rows)


if __name__ == "__main__":
    main()
