"""The stabiliser's optical flow: time per 720p frame and accuracy, full DIS medium preset against
the lighter setting `revamp video` uses (revamp.video.flow.dis_flow).

    .venv/bin/python bench/stabilizer_flow.py [--json FILE]

Accuracy: the mean warping residual |frame_t - warp(frame_t-1, flow)| on consecutive Sintel
frames (../shared/data/video/sintel; lower is better), the mean confidence the stabiliser derives
from it, and the flow read on a picture shifted by a known (2.5, 1.25) px. Time: the median of 7
runs on those frames resized to 1280x720 (2-core CPU: run it on an idle machine).
"""
from __future__ import annotations

import argparse
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the result to this file")
    args = parser.parse_args()
    files = sorted(SINTEL.glob("frame_*.png"))
    if len(files) < 2:
        print(f"needs the Sintel frames in {SINTEL}", file=sys.stderr)
        return 1
    frames = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    pairs = list(zip(frames[1:], frames[:-1]))  # (current, previous)
    big = [np.asarray(Image.fromarray(f).resize((1280, 720), Image.Resampling.BICUBIC)) for f in frames[:2]]
    shifted = cv2.warpAffine(big[0], np.float32([[1, 0, SHIFT[0]], [0, 1, SHIFT[1]]]), (1280, 720), flags=cv2.INTER_CUBIC)
    results = {}
    for name, refine in (("DIS medium (metrics)", True), ("DIS medium, no refinement, 16 iterations (stabiliser)", False)):
        dis = dis_flow(refine)
        residual, confidence = [], []
        for cur, prev in pairs:
            mismatch = np.abs(cur / np.float32(255) - warp(prev / np.float32(255), flow_to_previous(cur, prev, dis))).mean(axis=2)
            residual.append(mismatch.mean())
            confidence.append(np.exp(-((mismatch / TOLERANCE) ** 2)).mean())
        # big[0](x) = shifted(x + SHIFT), so the flow from big[0] to `shifted` reads SHIFT.
        read = flow_to_previous(big[0], shifted, dis)[100:-100, 100:-100].reshape(-1, 2).mean(axis=0)
        times = []
        for _ in range(8):
            start = time.perf_counter()
            flow_to_previous(big[1], big[0], dis)
            times.append(time.perf_counter() - start)
        results[name] = {"ms_per_frame_1280x720": round(float(np.median(times[1:])) * 1000, 1),
                         "sintel_residual_x1000": round(float(np.mean(residual)) * 1000, 3),
                         "sintel_confidence": round(float(np.mean(confidence)), 4),
                         "shift_read": [round(float(v), 3) for v in read], "shift_true": list(SHIFT)}
    report = {"command": "bench/stabilizer_flow.py " + " ".join(sys.argv[1:]), "sintel_pairs": len(pairs),
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, OpenCV {cv2.__version__}", "results": results}
    print(json.dumps(report, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
