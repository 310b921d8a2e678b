"""`revamp video` as a user runs it, measured the way the compressed-video papers do.

    .venv/bin/python bench/video_end_to_end.py [--data ../shared/data/video/vid4] [--model default]
        [--codec h264:37 --codec h265:37] [--extra '--codec ffv1'] [--json FILE]

Each clip (a folder of frames) is encoded to an MKV file with libx264 or libx265 at a constant QP
(preset medium, IPB, yuv420p, BT.601 limited range), restored by `revamp video FILE -o OUT.mkv`
(all defaults unless ``--extra``), and both files are decoded. Reported: PSNR of the decoded Y
plane against BT.601 Y of the original frames, mean over frames, then over clips, for the input
file and the output file, and the difference.
"""
from __future__ import annotations

import argparse
import json
import shlex
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from revamp.cli import main as revamp
from revamp.evaluation.video import load_clips
from revamp.metrics import rgb_to_y

ENCODERS = {"h264": "libx264", "h265": "libx265"}


def encode(frames: list[np.ndarray], path: Path, codec: str, qp: int) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream(ENCODERS[codec], rate=25)
        h, w = frames[0].shape[:2]
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.colorspace, stream.codec_context.color_range = 6, 1  # BT.601 (smpte170m), limited
        stream.codec_context.options = {"qp": str(qp), "preset": "medium"} if codec == "h264" else {
            "preset": "medium", "x265-params": f"qp={qp}:log-level=error"}
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p", dst_colorspace="smpte170m", dst_color_range="MPEG", threads=1)
            frame.pts, frame.time_base = i, Fraction(1, 25)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def psnr_y(path: Path, refs: list[np.ndarray]) -> float:
    h = refs[0].shape[0]
    with av.open(str(path)) as c:
        planes = [f.to_ndarray(format="yuv420p", threads=1)[:h].astype(np.float64) for f in c.decode(video=0)]
    if len(planes) != len(refs):
        raise RuntimeError(f"{path}: {len(planes)} frames, expected {len(refs)}")
    return float(np.mean([10 * np.log10(255**2 / np.mean((p - rgb_to_y(r)) ** 2)) for p, r in zip(planes, refs)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/video/vid4")
    parser.add_argument("--model", default="default")
    parser.add_argument("--codec", action="append", help="codec:QP (default h264:37 and h265:37)")
    parser.add_argument("--extra", default="", help="more `revamp video` options, e.g. '--codec ffv1'")
    parser.add_argument("--max-frames", type=int, default=12)
    parser.add_argument("--json")
    args = parser.parse_args()
    clips = load_clips(Path(args.data), args.max_frames)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.codec or ["h264:37", "h265:37"]:
            codec, qp = spec.split(":")
            per = []
            for name, refs in clips.items():
                src, dst = Path(tmp) / f"{name}-{codec}.mkv", Path(tmp) / f"{name}-{codec}-out.mkv"
                encode(refs, src, codec, int(qp))
                if revamp(["video", str(src), "-o", str(dst), "--model", args.model, "-q", "--overwrite", *shlex.split(args.extra)]) != 0:
                    raise SystemExit(f"revamp video failed on {src}")
                per.append((psnr_y(src, refs), psnr_y(dst, refs)))
                print(f"{spec} {name}: input {per[-1][0]:.3f} dB, output {per[-1][1]:.3f} dB ({per[-1][1] - per[-1][0]:+.3f})", flush=True)
            inp, outp = (float(np.mean(v)) for v in zip(*per))
            rows.append({"input": spec, "psnr_y_input": round(inp, 4), "psnr_y_output": round(outp, 4), "delta": round(outp - inp, 4),
                         "per_clip_delta": {n: round(o - i, 4) for n, (i, o) in zip(clips, per)}})
            print(f"{spec}: mean input {inp:.3f} dB, output {outp:.3f} dB, delta {outp - inp:+.3f} dB", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"model": args.model, "extra": args.extra, "data": args.data, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
