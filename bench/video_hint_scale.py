"""What a codec-aware model is told of a video frame's quantiser: how VIDEO_HINT_SCALE,
H265_HINT_SCALE and BLIND_VIDEO_STRENGTH in revamp.defaults were chosen, and what they give.

    .venv/bin/python bench/video_hint_scale.py [--data DIR] [--model video] [--codecs h265] [--preset medium] [--json FILE]

Each clip of DATA (default ../shared/data/video/train_clips) is compressed as `revamp eval
--video` does at each degradation of bench/training_clips.py and at MPEG-4 q6 and q12, and
restored frame by frame, every frame told its reported step (H.264, MPEG-2, MPEG-4: the
decoder's maps; H.265: the slice QP) times each scale of SCALES; H.265 frames also blind (the
hint withheld, as for a file that reports none), keeping each share of SHARES of the network's
correction; H.265 at QP22 too. Printed: ΔPSNR-Y over the compressed input (BT.601 Y, no crop,
mean over frames, then over clips) per setting.
"""
from __future__ import annotations

import numpy as np
from training_clips import DEGRADATIONS, arguments, compressed_clips, mean_psnr_y, mean_row, summary_row, write_json

from revamp.codec import BLIND
from revamp.evaluation.video import clip_neighbours
from revamp.inference.restorer import Restorer

SCALES = (1.0, 0.85, 0.7, 0.5, 0.35)
SHARES = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)
MPEG4 = [("mpeg4", 6), ("mpeg4", 12)]  # the scale applies to MPEG-4 Part 2 files too
H265_FINE = [("h265", 22)]  # the finest QP of the training degradations


def main() -> None:
    args = arguments(__doc__)
    restorer = Restorer(args.model, backend="torch")
    rows = []
    for kind, q, clips in compressed_clips(args, DEGRADATIONS + MPEG4 + H265_FINE, exact=restorer.exact_video_rgb):
        gains: dict[str, list[float]] = {}
        for refs, comp, _, hints in clips:
            base = mean_psnr_y(comp, refs)
            frames = [c.astype(np.float32) / 255 for c in comp]
            planes = list(clip_neighbours(restorer, comp, hints))  # multi-frame models see their neighbours
            if kind == "h265":  # blind: the hint withheld
                raw = [restorer.restore_rgb(f, hint=BLIND, neighbours=p) for f, p in zip(frames, planes)]
                for share in SHARES:
                    gains.setdefault(f"share {share:g}", []).append(mean_psnr_y([f + share * (r - f) for f, r in zip(frames, raw)], refs) - base)
            for scale in SCALES:
                out = [restorer.restore_rgb(f, hint=h.scaled(scale), neighbours=p) for f, h, p in zip(frames, hints, planes)]
                gains.setdefault(f"scale {scale:g}", []).append(mean_psnr_y(out, refs) - base)
        rows.append(summary_row(kind, q, gains))
    write_json(args, rows=rows, mean=mean_row(rows))


if __name__ == "__main__":
    main()
