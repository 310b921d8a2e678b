"""What `revamp video`'s output encoding costs: restored frames written losslessly (FFV1) against
H.264/H.265 at several CRFs, measured on the decoded Y plane.

    .venv/bin/python bench/output_quality.py [--data ../shared/data/video/vid4] [--model default]
        [--degrade h264:37 ...] [--crf 18 --crf 14 ...] [--preset medium --preset faster ...] [--json FILE]

Each clip is compressed at the given codec and quantiser (`revamp eval --video`'s round trip),
restored as `revamp video` restores it (the model told the file's quantisers, the stabiliser at
its default), then
encoded through `revamp video`'s own encoder settings (revamp.video.io: BT.601 limited range,
yuv420p) into memory and decoded again. Reported per output setting, as means over clips: PSNR of
the decoded Y plane against BT.601 Y of the originals (mean over frames, no crop), its cost
against the lossless output, the size in bits per pixel, and the writer's seconds per megapixel
(wall time of converting, encoding and muxing into memory, with this machine's threads).
``--preset``: x264/x265 presets to try besides `revamp video`'s own.
"""
from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

import av
import numpy as np

from revamp.data.degrade import video_roundtrip
from revamp.defaults import STABILIZE
from revamp.evaluation.video import BT601, clip_hints, load_clips, restore_clip
from revamp.inference.restorer import Restorer
from revamp.metrics import rgb_to_y
from revamp.video.io import CODECS, open_encoder_stream, rgb_to_frame


def encode_decode(frames: list[np.ndarray], codec: str, crf: int | None,
                  preset: str | None = None) -> tuple[list[np.ndarray], int, float]:
    """Frames through `revamp video`'s encoder settings (``preset`` instead of its own, if given) and
    back: (decoded Y planes, bytes, seconds spent writing: conversion, encoding, muxing)."""
    h, w = frames[0].shape[:2]
    buf = io.BytesIO()
    start = time.perf_counter()
    with av.open(buf, "w", format="matroska") as container:
        stream = open_encoder_stream(container, codec, crf, BT601, w, h)
        if preset:
            stream.codec_context.options = {**stream.codec_context.options, "preset": preset}
        for i, rgb in enumerate(frames):
            frame = rgb_to_frame(rgb, CODECS[codec][1], BT601)
            frame.pts, frame.time_base = i, BT601.time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    seconds = time.perf_counter() - start
    size = buf.tell()
    buf.seek(0)
    with av.open(buf, "r") as container:
        planes = [f.to_ndarray(format="yuv420p", threads=1)[:h] for f in container.decode(video=0)]
    return planes, size, seconds


def psnr_y(planes: list[np.ndarray], refs: list[np.ndarray]) -> float:
    return float(np.mean([10 * np.log10(255.0**2 / np.mean((p.astype(np.float64) - rgb_to_y(r)) ** 2)) for p, r in zip(planes, refs)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/video/vid4")
    parser.add_argument("--model", default="default")
    parser.add_argument("--degrade", action="append", help="codec:quantiser (default h264:27,32,37,42 and h265:37)")
    parser.add_argument("--crf", type=int, action="append", help="CRFs to try (default 18 16 14 12 10)")
    parser.add_argument("--codec", default="h264", choices=["h264", "h265"])
    parser.add_argument("--preset", action="append", default=[], help="also try these encoder presets at each CRF")
    parser.add_argument("--max-frames", type=int, default=12)
    parser.add_argument("--json")
    args = parser.parse_args()
    degradations = [(d.split(":")[0], int(d.split(":")[1])) for d in args.degrade or ["h264:27", "h264:32", "h264:37", "h264:42", "h265:37"]]
    crfs = args.crf or [18, 16, 14, 12, 10]
    restorer = Restorer(args.model, device="cpu")
    clips = load_clips(Path(args.data), args.max_frames)
    rows = []
    for kind, q in degradations:
        per: dict[str, list[tuple[float, float, float]]] = {}
        for name, refs in clips.items():
            steps: list[float] = []
            luma: list[np.ndarray] = []
            fast: list[np.ndarray] = []
            compressed = video_roundtrip(refs, kind, q, steps=steps, luma=luma, fast=fast)
            hints = clip_hints(kind, steps, *refs[0].shape[:2])
            restored = restore_clip(restorer, compressed if restorer.exact_video_rgb else fast, STABILIZE, hints, kind=kind)
            pixels = len(refs) * refs[0].shape[0] * refs[0].shape[1]
            outputs = [("ffv1", "ffv1", None, None)] + [(f"{args.codec} crf {c}", args.codec, c, None) for c in crfs]
            outputs += [(f"{args.codec} crf {c} {p}", args.codec, c, p) for c in crfs for p in args.preset]
            for label, codec, crf, preset in outputs:
                planes, size, seconds = encode_decode(restored, codec, crf, preset)
                per.setdefault(label, []).append((psnr_y(planes, refs), 8 * size / pixels, seconds * 1e6 / pixels))
            per.setdefault("input", []).append((psnr_y(luma, refs), float("nan"), float("nan")))  # the decoded Y planes
        lossless = float(np.mean([p for p, _, _ in per["ffv1"]]))
        for label, values in per.items():
            mean, bits, seconds = (float(np.mean(column)) for column in zip(*values))
            rows.append({"degradation": f"{kind}:{q}", "output": label, "psnr_y": round(mean, 4), "cost_db": round(lossless - mean, 4),
                         "bits_per_pixel": round(bits, 4), "encode_s_per_mpixel": round(seconds, 4)})
            print(f"{kind}:{q:<3} {label:<22} PSNR-Y {mean:.3f} dB  cost {lossless - mean:+.3f} dB  {bits:.3f} bpp  "
                  f"{seconds:.3f} s/Mpx", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"model": args.model, "data": args.data, "clips": list(clips), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
