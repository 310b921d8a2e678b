"""The stabiliser's blending tolerance against the codec's quantiser: how the rule in
revamp.video.stabilize (blend_tolerance, STEP_FRACTION) was chosen, and what it gives.

    .venv/bin/python bench/stabilizer_tolerance.py [--data DIR] [--model video] [--codecs h264,h265] [--json FILE]

Each clip of DATA (default ../shared/data/video/train_clips: tuning is done on training clips,
never on Vid4) is compressed as `revamp eval --video` does (one IPB stream, constant QP/qscale)
and restored frame by frame once as `revamp video` restores it; the stabiliser (`revamp video`'s
mix and look-ahead) then runs over the restorations with the tolerance at each fraction of a grid
times each frame's mean quantiser step (MPEG-2/MPEG-4 steps count double: they are half as large
for the same noise), with and without the lean towards finer-quantised neighbours
(QUALITY_POWER, 0); with BLIND_TOLERANCE for every frame (what a file without quantisers gets);
and with the rule itself. Printed: the mean quantiser step and ΔPSNR-Y over the compressed input
(BT.601 Y, no crop, mean over frames, then over clips) for every setting.
"""
from __future__ import annotations

import numpy as np
from training_clips import arguments, mean_psnr_y, restored_clips, summary_row, write_json

from revamp.data.degrade import VIDEO_CODECS
from revamp.video.stabilize import (
    BLIND_TOLERANCE,
    QUALITY_POWER,
    TemporalStabilizer,
    blend_tolerance,
    stabilize_clip,
    step_tolerance,
)

FRACTIONS = (0.2, 0.3, 0.4, 0.5)  # x the H.264/H.265 step / 255
STEP_WEIGHT = {"h264": 1.0, "hevc": 1.0, "mpeg2video": 2.0, "mpeg4": 2.0}


def stabilised_gain(comp, raw, refs, base: float, tolerances, power: float) -> float:
    out = stabilize_clip(TemporalStabilizer(quality_power=power), comp, raw, tolerances)  # new arrays: raw stays as it is
    return mean_psnr_y(out, refs) - base


def main() -> None:
    args = arguments(__doc__)
    rows = []
    for kind, q, clips in restored_clips(args):
        codec = VIDEO_CODECS[kind][1]
        gains: dict[str, list[float]] = {}
        steps_seen = []
        for refs, comp, steps, hints, raw in clips:
            base = mean_psnr_y(comp, refs)
            steps_seen += steps
            gains.setdefault("frame by frame", []).append(mean_psnr_y(raw, refs) - base)
            gains.setdefault("blind", []).append(stabilised_gain(comp, raw, refs, base, [BLIND_TOLERANCE] * len(comp), 0.0))
            for f in FRACTIONS:
                tolerances = [step_tolerance(f * STEP_WEIGHT[codec] / 255, h.steps) for h in hints]
                for power in (QUALITY_POWER, 0.0):
                    gains.setdefault(f"{f:g}, power {power:g}", []).append(stabilised_gain(comp, raw, refs, base, tolerances, power))
            rule = [blend_tolerance(codec, h) for h in hints]
            gains.setdefault("rule", []).append(stabilised_gain(comp, raw, refs, base, rule, QUALITY_POWER))
            gains.setdefault("rule tolerance", []).append(float(np.mean(rule)))
        rows.append(summary_row(kind, q, gains, mean_step=round(float(np.mean(steps_seen)), 1)))
    write_json(args, rows=rows)


if __name__ == "__main__":
    main()
