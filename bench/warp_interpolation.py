"""How frames are warped (revamp.video.flow.INTERPOLATION): bilinear against bicubic, for the
stabiliser (the frames it blends and the warp its gates compare with the frame) and for a
multi-frame model's aligned neighbours, and bicubic with bilinear gates alone; and the stabiliser's
mix with each (how STABILIZE in revamp.defaults was chosen).

    .venv/bin/python bench/warp_interpolation.py [--data DIR] [--model video-quality] [--codecs h264,h265] [--json FILE]

Each clip of DATA (default ../shared/data/video/train_clips) is compressed as `revamp eval
--video` does and, with each setting, restored frame by frame as `revamp video` restores it
(a multi-frame model sees its neighbours warped so) and then stabilised at each mix of MIXES (the
tolerance rule and look-ahead of `revamp video`). Printed: ΔPSNR-Y over the compressed input
(BT.601 Y, no crop, mean over frames, then over clips).
"""
from __future__ import annotations

import cv2
from training_clips import arguments, compressed_clips, frame_by_frame, mean_psnr_y, mean_row, summary_row, write_json

import revamp.video.flow as flow
from revamp.data.degrade import VIDEO_CODECS
from revamp.inference.restorer import Restorer
from revamp.video.flow import Warps
from revamp.video.stabilize import TemporalStabilizer, blend_tolerance, stabilize_clip

# label -> (the warp of blended frames and neighbours, the warp of the stabiliser's gates)
SETTINGS = {"bilinear": (cv2.INTER_LINEAR, cv2.INTER_LINEAR), "bicubic": (cv2.INTER_CUBIC, cv2.INTER_CUBIC),
            "bicubic, bilinear gates": (cv2.INTER_CUBIC, cv2.INTER_LINEAR)}
MIXES = (0.3, 0.45, 0.6, 0.7)


class GatedWarps(Warps):
    """The stabiliser's warps with ``gate`` for their warp (the maps it hands on for blending are the same)."""

    def __init__(self, gate: int):
        super().__init__()
        self.gate = gate

    def __call__(self, *args, **kwargs):
        blend, flow.INTERPOLATION = flow.INTERPOLATION, self.gate
        try:
            return super().__call__(*args, **kwargs)
        finally:
            flow.INTERPOLATION = blend


def main() -> None:
    args = arguments(__doc__)
    restorer = Restorer(args.model, backend="torch")
    rows = []
    for kind, q, clips in compressed_clips(args, exact=restorer.exact_video_rgb):
        gains: dict[str, list[float]] = {}
        for refs, comp, _, hints in clips:
            tolerances = [blend_tolerance(VIDEO_CODECS[kind][1], h) for h in hints]
            base = mean_psnr_y(comp, refs)
            raw = {}  # restorations per warp: a single-frame model's do not depend on it
            for name, (warp, gate) in SETTINGS.items():
                flow.INTERPOLATION = warp
                key = warp if restorer.neighbours else None
                if key not in raw:
                    raw[key] = frame_by_frame(restorer, comp, hints)
                gains.setdefault(f"{name}, frame by frame", []).append(mean_psnr_y(raw[key], refs) - base)
                for mix in MIXES:
                    out = stabilize_clip(TemporalStabilizer(mix, warps=GatedWarps(gate)), comp, raw[key], tolerances)
                    gains.setdefault(f"{name}, mix {mix:g}", []).append(mean_psnr_y(out, refs) - base)
        rows.append(summary_row(kind, q, gains))
    write_json(args, rows=rows, mean=mean_row(rows))


if __name__ == "__main__":
    main()
