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

from training_clips import arguments, mean_row, stabiliser_rows, write_json

from revamp.video.stabilize import TemporalStabilizer

MIXES = (0.4, 0.5, 0.6, 0.7)
LOOK_AHEADS = (0, 1, 2, 3, 5)


def main() -> None:
    args = arguments(__doc__)
    # Every neighbour weighted alike (quality_power 0), as when the mix and look-ahead were chosen.
    settings = {f"mix {mix:g} look-ahead {look_ahead}": lambda mix=mix, look_ahead=look_ahead: TemporalStabilizer(mix, look_ahead=look_ahead, quality_power=0)
                for mix in MIXES for look_ahead in LOOK_AHEADS}
    rows = stabiliser_rows(args, settings)
    write_json(args, rows=rows, mean=mean_row(rows))


if __name__ == "__main__":
    main()
