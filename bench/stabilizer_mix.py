"""The stabiliser's default mix per kind of model: how STABILIZE and STABILIZE_MULTI_FRAME in
revamp.defaults were chosen, and what they give.

    .venv/bin/python bench/stabilizer_mix.py [--data DIR] [--model video-quality] [--json FILE]

Each clip of DATA (default ../shared/data/video/train_clips: tuning is done on training clips,
never on Vid4) is compressed as `revamp eval --video` does (one IPB stream, constant QP/qscale)
and restored frame by frame once, a multi-frame model seeing its neighbours; the stabiliser then
runs over the restorations as `revamp video` runs it (look-ahead, quality weighting and tolerance
rule as shipped) at each mix of MIXES. Printed: ΔPSNR-Y over the compressed input (BT.601 Y, no
crop, mean over frames, then over clips) for every mix, and frame by frame.
"""
from __future__ import annotations

from training_clips import arguments, mean_row, stabiliser_rows, write_json

from revamp.video.stabilize import TemporalStabilizer

MIXES = (0.3, 0.45, 0.6, 0.7)


def main() -> None:
    args = arguments(__doc__)
    rows = stabiliser_rows(args, {f"mix {mix:g}": lambda mix=mix: TemporalStabilizer(mix) for mix in MIXES})
    write_json(args, rows=rows, mean=mean_row(rows))


if __name__ == "__main__":
    main()
