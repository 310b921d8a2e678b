"""The stabiliser's lean towards finer-quantised neighbours: how QUALITY_POWER in
revamp.video.stabilize was chosen, and what it gives.

    .venv/bin/python bench/stabilizer_quality.py [--data DIR] [--model video] [--json FILE]

Each clip of DATA (default ../shared/data/video/train_clips) is compressed and restored frame by
frame once as `revamp video` restores it (bench/training_clips.py); the stabiliser (the default
mix and look-ahead, the tolerance rule of `revamp video`) then runs over the restorations with
each power of the grid (0: every neighbour weighted alike). Printed: ΔPSNR-Y over the compressed
input (BT.601 Y, no crop, mean over frames, then over clips). H.264 only: constant-qscale MPEG-2
streams have one tolerance for every frame, so the power changes nothing there, and H.265 is
weighed with and without the lean by bench/stabilizer_tolerance.py.
"""
from __future__ import annotations

from training_clips import arguments, stabiliser_rows, write_json

from revamp.video.stabilize import TemporalStabilizer

POWERS = (0.0, 0.5, 1.0, 2.0)


def main() -> None:
    args = arguments(__doc__)
    settings = {f"power {power:g}": lambda power=power: TemporalStabilizer(quality_power=power) for power in POWERS}
    rows = stabiliser_rows(args, settings, kinds=("h264",))
    write_json(args, rows=rows)


if __name__ == "__main__":
    main()
