"""The stabiliser's mix for one model, everything else as `revamp video` runs it (the look-ahead,
the lean towards finer-quantised neighbours, the tolerance rule and patch gates of
revamp.video.stabilize): what the default (revamp.defaults.STABILIZE) gives a model against
other mixes, on the training clips (never on Vid4).

    .venv/bin/python bench/stabilizer_mix.py --model video-quality [--mixes 0.4,0.5,0.6,0.7] [--json FILE]

Printed per degradation (training_clips.DEGRADATIONS): ΔPSNR-Y over the compressed input (BT.601
Y, no crop, mean over frames, then over clips) frame by frame and at each mix.
"""
from __future__ import annotations

from training_clips import arguments, mean_row, stabiliser_rows, write_json

from revamp.video.stabilize import TemporalStabilizer


def main() -> None:
    args = arguments(__doc__, lambda ap: ap.add_argument("--mixes", default="0.4,0.5,0.6,0.7", help="comma-separated"))
    mixes = [float(m) for m in args.mixes.split(",")]
    rows = stabiliser_rows(args, {f"mix {mix:g}": lambda mix=mix: TemporalStabilizer(mix) for mix in mixes})
    write_json(args, mixes=mixes, rows=rows, mean=mean_row(rows))


if __name__ == "__main__":
    main()
