"""The window the stabiliser averages its gates' mismatch over (GATE_WINDOW in
revamp.video.stabilize), with the tolerance of H.265 pictures (HEVC_ROOT_FRACTION x the square root
of their slice QP's step; before, BLIND_TOLERANCE as for files without quantisers) and a larger
tolerance for the others: how they were chosen.

    .venv/bin/python bench/stabilizer_gate_window.py [--model video] [--codecs h264,h265] [--preset medium] [--json FILE]

Each clip of DATA (default ../shared/data/video/train_clips) is compressed as `revamp eval
--video` does (or with --preset), restored frame by frame once as `revamp video` restores it, and
stabilised with each setting (at the default strength unless it says so; the default look-ahead).
Printed: ΔPSNR-Y over the compressed input (BT.601 Y, no crop, mean over frames, then over clips).
"""
from __future__ import annotations

from training_clips import arguments, mean_row, stabiliser_rows, write_json

from revamp.defaults import STABILIZE
from revamp.video.stabilize import STEP_FRACTION, TemporalStabilizer, root_tolerance, step_tolerance

# label -> (window, factor on the H.264/MPEG-2 step tolerance, HEVC's root fraction or a fixed tolerance for it, strength)
SETTINGS = {
    "per pixel, H.265 0.03": (1, 1.0, 0.03, STABILIZE),  # the rule before
    "3, H.265 0.024": (3, 1.0, 0.024, STABILIZE),
    "5, H.265 0.024": (5, 1.0, 0.024, STABILIZE),
    "7, H.265 0.024": (7, 1.0, 0.024, STABILIZE),
    "9, H.265 0.024": (9, 1.0, 0.024, STABILIZE),
    "7, H.265 0.03": (7, 1.0, 0.03, STABILIZE),
    "7, step tolerance x1.25, H.265 0.024": (7, 1.25, 0.024, STABILIZE),
    "7, H.265 0.07 root": (7, 1.0, ("root", 0.07), STABILIZE),
    "7, H.265 0.086 root": (7, 1.0, ("root", 0.086), STABILIZE),  # shipped
    "7, H.265 0.086 root, strength 0.5": (7, 1.0, ("root", 0.086), 0.5),
    "7, H.265 0.086 root, strength 0.7": (7, 1.0, ("root", 0.086), 0.7),
    "7, H.265 0.1 root": (7, 1.0, ("root", 0.1), STABILIZE),
}


def tolerance(codec: str, hint, factor: float, hevc) -> float:
    """A frame's tolerance under a setting (as revamp.video.stabilize.blend_tolerance for the shipped one)."""
    if codec == "hevc":
        return hevc if isinstance(hevc, float) else root_tolerance(hevc[1], hint.steps)
    return factor * step_tolerance(STEP_FRACTION[codec], hint.steps)


def main() -> None:
    args = arguments(__doc__)
    settings = {name: lambda window=window, mix=mix: TemporalStabilizer(mix, window=window)
                for name, (window, _, _, mix) in SETTINGS.items()}
    rules = {name: lambda codec, hint, factor=factor, hevc=hevc: tolerance(codec, hint, factor, hevc)
             for name, (_, factor, hevc, _) in SETTINGS.items()}
    rows = stabiliser_rows(args, settings, rules=rules)
    write_json(args, rows=rows, mean=mean_row(rows))


if __name__ == "__main__":
    main()
