"""End-to-end `revamp video` throughput: decode, restore, stabilise, encode, mux.

    .venv/bin/python bench/video_throughput.py [--size 1280x720] [--frames 24] [--short K] [--model default] [--json FILE]

Makes a synthetic H.264 clip (a photo-like picture panned 2 px per frame, QP 32, with an AAC
track), restores it with the CLI in a child process and reports frames per second and seconds
per frame, as one JSON line. The first frames include start-up and warm-up, as a user's run does.
``--short K`` also restores a clip of K frames made the same way, in a run of its own (first)
and reports the steady rate of a long job: (frames - K) / (time of all - time of K).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image


def make_clip(path: Path, w: int, h: int, frames: int) -> None:
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (h // 48 + 2, (w + 2 * frames) // 48 + 2, 3), dtype=np.uint8)
    big = np.asarray(Image.fromarray(small).resize((w + 2 * frames, h), Image.Resampling.BICUBIC))
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        v.codec_context.options = {"qp": "32"}
        a = out.add_stream("aac", rate=48000)
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(big[:, 2 * i : 2 * i + w]), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
        tone = np.zeros((2, 48000 * frames // 25), np.float32)
        for k in range(0, tone.shape[1], 1024):
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, k : k + 1024]), format="fltp", layout="stereo")
            af.sample_rate, af.pts = 48000, k
            out.mux(a.encode(af))
        out.mux(a.encode(None))


def restore_seconds(src: Path, model: str, extra: str, frames: int) -> float:
    """Wall time of `revamp video` on ``src`` in a child process (start-up included)."""
    dst = src.with_name(src.stem + "-out.mp4")
    cmd = [sys.executable, "-m", "revamp.cli", "video", str(src), "-o", str(dst), "-q", "--model", model, *extra.split()]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=dict(os.environ, OMP_WAIT_POLICY="PASSIVE"))
    seconds = time.perf_counter() - start
    with av.open(str(dst)) as c:
        assert c.streams.video[0].frames == frames
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--model", default="default")
    parser.add_argument("--extra", default="", help="extra `revamp video` options, e.g. '--no-stabilize'")
    parser.add_argument("--short", type=int, default=0, help="also time the first K frames alone: the steady rate of a long job")
    parser.add_argument("--json", help="also write the result to this file")
    args = parser.parse_args()
    if not 0 <= args.short < args.frames:
        parser.error("--short must be below --frames")
    w, h = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        clips = {n: Path(tmp) / f"in{n}.mp4" for n in ([args.short] if args.short else []) + [args.frames]}
        for n, src in clips.items():
            make_clip(src, w, h, n)
        seconds = {n: restore_seconds(src, args.model, args.extra, n) for n, src in clips.items()}
    total = seconds[args.frames]
    result = {"command": "bench/video_throughput.py " + " ".join(sys.argv[1:]), "size": args.size, "frames": args.frames,
              "model": args.model, "options": args.extra, "seconds": round(total, 1), "fps": round(args.frames / total, 3),
              "s_per_frame": round(total / args.frames, 3), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs"}
    if args.short:
        steady = (total - seconds[args.short]) / (args.frames - args.short)
        result.update(short_frames=args.short, short_seconds=round(seconds[args.short], 1), steady_fps=round(1 / steady, 3),
                      steady_s_per_frame=round(steady, 3))
    print(json.dumps(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
