"""What the benches that tune video defaults on the training clips share (never on Vid4:
bench/stabilizer_look_ahead.py, bench/stabilizer_tolerance.py, bench/video_hint_scale.py): their
command line, the degradations, and the clips compressed as `revamp eval --video` does (one IPB
stream, constant QP/qscale) and restored frame by frame once, for the stabiliser settings to be
compared on the same restorations."""
from __future__ import annotations

import argparse
import json
import os
import platform
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from revamp.data.degrade import video_roundtrip
from revamp.evaluation.video import clip_hints, load_clips
from revamp.inference.restorer import Restorer
from revamp.metrics import psnr
from revamp.video.job import restore_video_frame

ROOT = Path(__file__).resolve().parents[1]
DEGRADATIONS = [("h264", 27), ("h264", 32), ("h264", 37), ("h264", 42), ("mpeg2", 6), ("mpeg2", 10), ("mpeg2", 16),
                ("h265", 27), ("h265", 32), ("h265", 37), ("h265", 42)]


def arguments(doc: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    # Tuning is done on training clips, never on Vid4.
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "video" / "train_clips"))
    ap.add_argument("--model", default="video")
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--json")
    return ap.parse_args()


def mean_psnr_y(frames: list[np.ndarray], refs: list[np.ndarray]) -> float:
    """BT.601 Y, no crop, mean over frames; float frames in [0, 1] are rounded to uint8 first, as written."""
    return float(np.mean([psnr(f if f.dtype == np.uint8 else (np.clip(f, 0, 1) * 255 + 0.5).astype(np.uint8), r, channel="y")
                          for f, r in zip(frames, refs)]))


def restored_clips(args: argparse.Namespace) -> Iterator[tuple[str, int, Iterator[tuple]]]:
    """Per degradation of DEGRADATIONS: (kind, q, its clips), each clip as (references,
    compressed frames, the quantiser step per frame, the hints `revamp video` reads, and the
    frame-by-frame restorations `revamp video` makes before its stabiliser)."""
    clips = load_clips(Path(args.data), args.frames)
    restorer = Restorer(args.model, backend="torch")

    def one(kind: str, q: int):
        for refs in clips.values():
            steps: list[float] = []
            comp = video_roundtrip(refs, kind, q, steps=steps)
            hints = clip_hints(kind, steps, *refs[0].shape[:2])
            yield refs, comp, steps, hints, [restore_video_frame(restorer, c, h) for c, h in zip(comp, hints)]

    for kind, q in DEGRADATIONS:
        yield kind, q, one(kind, q)


def label(kind: str, q: int) -> str:
    return f"{kind} {'QP' if kind.startswith('h26') else 'q'}{q}"


def write_json(args: argparse.Namespace, **payload) -> None:
    if args.json:
        Path(args.json).write_text(json.dumps({"data": args.data, "model": args.model, "frames": args.frames, **payload,
                                               "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"}, indent=1))
