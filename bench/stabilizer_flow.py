"""The stabiliser's optical flow: time per 720p frame and accuracy, full DIS medium preset against
the lighter settings `revamp video` uses (revamp.video.flow.dis_flow; from 577 lines up, measured
on frames shrunk to at most 576 lines: revamp.video.stabilize.FLOW_LINES).

    .venv/bin/python bench/stabilizer_flow.py [--restore] [--json FILE]

Accuracy: the mean warping residual |frame_t - warp(frame_t-1, flow)| on consecutive Sintel
frames (../shared/data/video/sintel, 1024x436; lower is better), on the same frames resized to
1280x720, the mean confidence the stabiliser derives from it, and the flow read on a picture
shifted by a known (2.5, 1.25) px. Time: the median of 7 runs on the 720p frames, with OpenCV's
threads and with one (2-core CPU: run it on an idle machine).
``--restore``: what it does to the result: the 720p Sintel frames through H.264 at QP 32, 37 and
42, restored by the default model without the stabiliser, with it measuring flow at full size,
and with the shrunk flow; PSNR-Y, SSIM-Y and the temporal metrics against the originals.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from revamp.video.flow import dis_flow, flow_to_previous, warp
from revamp.video.stabilize import TOLERANCE

SINTEL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "video" / "sintel"
SHIFT = (2.5, 1.25)


def resize(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.BICUBIC))


def residual(current: np.ndarray, previous: np.ndarray, flow: np.ndarray) -> tuple[float, float]:
    """Mean |current - warp(previous)| and the stabiliser's mean confidence from it."""
    mismatch = np.abs(current / np.float32(255) - warp(previous / np.float32(255), flow)).mean(axis=2)
    return float(mismatch.mean()), float(np.exp(-((mismatch / TOLERANCE) ** 2)).mean())


def median_ms(run, threads: int | None = None) -> float:
    """Median of 7 timed runs after one warm-up; ``threads``: OpenCV's thread count meanwhile."""
    before = cv2.getNumThreads()
    if threads:
        cv2.setNumThreads(threads)
    try:
        times = []
        for _ in range(8):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
    finally:
        cv2.setNumThreads(before)
    return round(float(np.median(times[1:])) * 1000, 1)


def restore_with_each_flow(refs: list[np.ndarray]) -> dict:
    from revamp.data.degrade import video_roundtrip
    from revamp.evaluation.video import clip_hints, measure
    from revamp.inference.restorer import Restorer
    from revamp.metrics.temporal import reference_flows
    from revamp.video.job import restore_sequence
    from revamp.video.stabilize import TemporalStabilizer

    restorer = Restorer("default", device="cpu", tile=768, backend="auto", even_tiles=True)  # as `revamp video`
    flows = reference_flows(refs)
    rows = {}
    for qp in (32, 37, 42):
        steps: list[float] = []
        fast: list[np.ndarray] = []
        compressed = video_roundtrip(refs, "h264", qp, steps=steps, fast=fast)
        given = compressed if restorer.exact_video_rgb else fast  # as `revamp video` gives them to the model
        hints = clip_hints("h264", steps, *refs[0].shape[:2])
        rows[f"QP{qp} compressed"] = measure(compressed, refs, flows)
        for name, lines in (("no stabiliser", 0), ("flow at full size", None), ("flow shrunk to 576 lines", 576)):
            # The forward pass at mix 0.5, as when the flow was chosen.
            stabilizer = TemporalStabilizer(0.5, flow_lines=lines, look_ahead=0) if lines != 0 else None
            items = ((f, h, None, None) for f, h in zip(given, hints))
            rows[f"QP{qp} {name}"] = measure([out for out, _ in restore_sequence(restorer, items, stabilizer)], refs, flows)
    return {row: {k: round(v, 4) for k, v in metrics.items()} for row, metrics in rows.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--restore", action="store_true", help="also restore H.264 clips with each flow setting")
    parser.add_argument("--json", help="also write the result to this file")
    args = parser.parse_args()
    files = sorted(SINTEL.glob("frame_*.png"))
    if len(files) < 2:
        print(f"needs the Sintel frames in {SINTEL}", file=sys.stderr)
        return 1
    frames = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    pairs = list(zip(frames[1:], frames[:-1]))  # (current, previous)
    pairs_720p = [tuple(resize(f, (1280, 720)) for f in pair) for pair in pairs]
    big = pairs_720p[0][::-1]
    shifted = cv2.warpAffine(big[0], np.float32([[1, 0, SHIFT[0]], [0, 1, SHIFT[1]]]), (1280, 720), flags=cv2.INTER_CUBIC)
    variants = (("DIS medium (metrics)", True, 1), ("DIS medium, no refinement, 16 iterations", False, 1),
                ("the same on half-size frames (stabiliser from 577 lines up)", False, 2))
    results = {}
    for name, refine, downscale in variants:
        dis = dis_flow(refine)
        native = [residual(cur, prev, flow_to_previous(cur, prev, dis, downscale)) for cur, prev in pairs]
        at_720p = [residual(cur, prev, flow_to_previous(cur, prev, dis, downscale)) for cur, prev in pairs_720p]
        # big[0](x) = shifted(x + SHIFT), so the flow from big[0] to `shifted` reads SHIFT.
        read = flow_to_previous(big[0], shifted, dis, downscale)[100:-100, 100:-100].reshape(-1, 2).mean(axis=0)
        one_frame = functools.partial(flow_to_previous, big[1], big[0], dis, downscale)
        results[name] = {"ms_per_frame_1280x720": median_ms(one_frame),
                         "ms_per_frame_1280x720_one_thread": median_ms(one_frame, threads=1),
                         "sintel_residual_x1000": round(float(np.mean([r for r, _ in native])) * 1000, 3),
                         "sintel_confidence": round(float(np.mean([c for _, c in native])), 4),
                         "sintel_720p_residual_x1000": round(float(np.mean([r for r, _ in at_720p])) * 1000, 3),
                         "sintel_720p_confidence": round(float(np.mean([c for _, c in at_720p])), 4),
                         "shift_read": [round(float(v), 3) for v in read], "shift_true": list(SHIFT)}
    report = {"command": "bench/stabilizer_flow.py " + " ".join(sys.argv[1:]), "sintel_pairs": len(pairs),
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, OpenCV {cv2.__version__}", "results": results}
    if args.restore:
        report["restored_720p"] = restore_with_each_flow([resize(f, (1280, 720)) for f in frames])
    print(json.dumps(report, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
