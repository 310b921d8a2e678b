"""How much the aligned neighbours hold that the frame itself does not: the plain mean of a decoded
frame and its neighbours (one a side, then two), each warped onto it and gated as a multi-frame
model receives them (revamp.video.neighbours.align, over ``--window`` pixels square), against the
decoded frame alone.

    .venv/bin/python bench/neighbour_information.py [--codec h264] [--qp 37] [--images 12] [--window 1]

Three kinds of 5-frame clips, 192-px crops, the middle frame measured (ΔPSNR-Y, BT.601 Y, no crop,
mean over clips): training images panned by whole pixels (what `revamp.data.degrade.VideoDegradation`
makes, motion up to 4 px a frame), the same panned by fractions of a pixel (bicubic), and the first
five frames of each training clip (../shared/data/video/train_clips). Training data only: Vid4
is for evaluation. "best neighbour": the better of the two nearest aligned neighbours on its own.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from training_clips import ROOT, mean_psnr_y

from revamp.data.degrade import video_roundtrip
from revamp.evaluation.video import load_clips
from revamp.imageio import read_dataset_image
from revamp.video.neighbours import align

DATA = ROOT.parent / "shared" / "data"
SIZE, FRAMES, MIDDLE = 192, 5, 2


def pan(img: np.ndarray, vy: float, vx: float) -> list[np.ndarray]:
    h, w = img.shape[:2]
    y0, x0 = (h - SIZE) // 2, (w - SIZE) // 2
    shift = [np.float32([[1, 0, -(x0 + (t - MIDDLE) * vx)], [0, 1, -(y0 + (t - MIDDLE) * vy)]]) for t in range(FRAMES)]
    return [cv2.warpAffine(img, m, (SIZE, SIZE), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT) for m in shift]


def centre_crops(data: Path, frames: int) -> list[list[np.ndarray]]:
    """The first ``frames`` frames of each clip in ``data``, cropped to the middle SIZE px square
    (less where a clip is smaller; even sides)."""
    out = []
    for clip in load_clips(data, frames).values():
        h, w = clip[0].shape[:2]
        s = min(SIZE, h, w) // 2 * 2
        y, x = (h - s) // 2, (w - s) // 2
        out.append([f[y : y + s, x : x + s] for f in clip])
    return out


def measure(clip: list[np.ndarray], codec: str, qp: int, window: int) -> tuple[float, float, float, float]:
    """PSNR-Y of the decoded middle frame, of its mean with the aligned neighbours one a side, two
    a side, and of the better of the nearest two."""
    decoded = video_roundtrip(clip, codec, qp)
    frame, reference = decoded[MIDDLE], clip[MIDDLE]
    near = [align(frame, decoded[j], window=window)[0] for j in (MIDDLE - 1, MIDDLE + 1)]
    far = [align(frame, decoded[j], window=window)[0] for j in (MIDDLE - 2, MIDDLE + 2)]
    base = frame.astype(np.float32) / 255
    best = max(mean_psnr_y([a], [reference]) for a in near)
    return (mean_psnr_y([frame], [reference]), mean_psnr_y([(base + sum(near)) / 3], [reference]),
            mean_psnr_y([(base + sum(near) + sum(far)) / 5], [reference]), best)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--codec", default="h264")
    ap.add_argument("--qp", type=int, default=37)
    ap.add_argument("--images", type=int, default=12)
    ap.add_argument("--window", type=int, default=1, help="of the gates (a model's neighbour_window)")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    images = [read_dataset_image(p) for p in sorted((DATA / "train" / "bsds500").iterdir())[: args.images]]
    kinds: dict[str, list[list[np.ndarray]]] = {"whole-pixel pans": [], "sub-pixel pans": [], "training clips": []}
    for img in images:
        kinds["whole-pixel pans"].append(pan(img, *map(float, rng.integers(-4, 5, 2))))
        kinds["sub-pixel pans"].append(pan(img, *rng.uniform(-4, 4, 2)))
    kinds["training clips"] = centre_crops(DATA / "video" / "train_clips", FRAMES)
    print(f"{args.codec} QP{args.qp}, gates over {args.window} px square, ΔPSNR-Y over the decoded frame (dB):")
    for kind, clips in kinds.items():
        r = np.array([measure(c, args.codec, args.qp, args.window) for c in clips])
        print(f"  {kind} ({len(clips)}): frame {r[:, 0].mean():.2f} dB, mean with one neighbour a side {(r[:, 1] - r[:, 0]).mean():+.3f}, "
              f"two a side {(r[:, 2] - r[:, 0]).mean():+.3f}, best neighbour {(r[:, 3] - r[:, 0]).mean():+.3f}")


if __name__ == "__main__":
    main()
