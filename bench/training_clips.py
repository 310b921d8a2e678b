"""What the benches that tune video defaults on the training clips share (never on Vid4:
bench/stabilizer_look_ahead.py, stabilizer_quality.py, stabilizer_tolerance.py,
stabilizer_gate_window.py, video_hint_scale.py): their command line, the degradations, the clips
compressed as `revamp eval --video` does (one IPB stream, constant QP/qscale) and restored frame by
frame once, for the stabiliser settings to be compared on the same restorations, and their
printed rows."""
from __future__ import annotations

import argparse
import json
import os
import platform
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from revamp.data.degrade import VIDEO_CODECS, video_roundtrip
from revamp.evaluation.video import clip_hints, clip_neighbours, load_clips
from revamp.inference.restorer import Restorer
from revamp.metrics import psnr
from revamp.video.job import restore_video_frame
from revamp.video.stabilize import blend_tolerance, stabilize_clip

ROOT = Path(__file__).resolve().parents[1]
DEGRADATIONS = [("h264", 27), ("h264", 32), ("h264", 37), ("h264", 42), ("mpeg2", 6), ("mpeg2", 10), ("mpeg2", 16),
                ("h265", 27), ("h265", 32), ("h265", 37), ("h265", 42)]


def arguments(doc: str, extra=None) -> argparse.Namespace:
    """The shared command line; ``extra(parser)`` adds a bench's own options."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    if extra:
        extra(ap)
    # Tuning is done on training clips, never on Vid4.
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "video" / "train_clips"))
    ap.add_argument("--model", default="video")
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--codecs", help="comma-separated: only these codecs' degradations (default: all)")
    # `revamp eval --video` encodes with x264/x265's fast presets; most users' files come from `medium`,
    # and a setting can win on one and lose on the other (docs/video.md, Temporal stabilisation).
    ap.add_argument("--preset", help="x264/x265 preset of the round trip (default: revamp eval --video's)")
    ap.add_argument("--json")
    return ap.parse_args()


def mean_psnr_y(frames: list[np.ndarray], refs: list[np.ndarray]) -> float:
    """BT.601 Y, no crop, mean over frames; float frames in [0, 1] are rounded to uint8 first, as written."""
    return float(np.mean([psnr(f if f.dtype == np.uint8 else (np.clip(f, 0, 1) * 255 + 0.5).astype(np.uint8), r, channel="y")
                          for f, r in zip(frames, refs)]))


def compressed_clips(args: argparse.Namespace, degradations=DEGRADATIONS, exact: bool = True) -> Iterator[tuple[str, int, Iterator[tuple]]]:
    """Per degradation: (kind, q, its clips), each clip as (references, compressed frames, the
    quantiser step per frame, the hints `revamp video` reads); a degradation's clips are only
    compressed when iterated. ``exact``: the frames in RGB by the exact conversion, else by
    FFmpeg's fast one (revamp.models.files.exact_video_rgb)."""
    clips = load_clips(Path(args.data), args.frames)
    if args.codecs:
        degradations = [(kind, q) for kind, q in degradations if kind in args.codecs.split(",")]

    def one(kind: str, q: int):
        for refs in clips.values():
            steps: list[float] = []
            fast: list[np.ndarray] = []
            comp = video_roundtrip(refs, kind, q, steps=steps, fast=fast, preset=args.preset)
            comp = comp if exact else fast
            yield refs, comp, steps, clip_hints(kind, steps, *refs[0].shape[:2])

    for kind, q in degradations:
        yield kind, q, one(kind, q)


def restored_clips(args: argparse.Namespace) -> Iterator[tuple[str, int, Iterator[tuple]]]:
    """compressed_clips of DEGRADATIONS, each clip with its frame-by-frame restorations as well,
    those `revamp video` makes before its stabiliser (multi-frame models see their neighbours)."""
    restorer = Restorer(args.model, backend="torch")
    for kind, q, clips in compressed_clips(args, exact=restorer.exact_video_rgb):
        yield kind, q, ((*clip, frame_by_frame(restorer, clip[1], clip[3])) for clip in clips)


def frame_by_frame(restorer: Restorer, frames: list[np.ndarray], hints: list) -> list[np.ndarray]:
    """The float32 restorations of a clip's decoded frames, before any stabiliser."""
    planes = clip_neighbours(restorer, frames, hints)
    return [restore_video_frame(restorer, rgb, hint, p) for rgb, hint, p in zip(frames, hints, planes)]


def stabiliser_rows(args: argparse.Namespace, settings: dict, kinds: tuple[str, ...] | None = None,
                    rules: dict | None = None) -> list[dict]:
    """For each degradation (of ``kinds`` only, if given): ΔPSNR-Y frame by frame and with the
    stabiliser each of ``settings`` (label -> a new TemporalStabilizer) makes, with the tolerance
    rule of `revamp video` (blend_tolerance) unless ``rules`` gives the setting another
    (label -> rule(codec, hint) -> tolerance)."""
    rows = []
    for kind, q, clips in restored_clips(args):
        if kinds and kind not in kinds:
            continue
        codec = VIDEO_CODECS[kind][1]
        gains: dict[str, list[float]] = {}
        for refs, comp, _, hints, raw in clips:
            base = mean_psnr_y(comp, refs)
            gains.setdefault("frame by frame", []).append(mean_psnr_y(raw, refs) - base)
            for name, stabilizer in settings.items():
                rule = (rules or {}).get(name, blend_tolerance)
                tolerances = [rule(codec, h) for h in hints]
                gains.setdefault(name, []).append(mean_psnr_y(stabilize_clip(stabilizer(), comp, raw, tolerances), refs) - base)
        rows.append(summary_row(kind, q, gains))
    return rows


def summary_row(kind: str, q: int, gains: dict[str, list[float]], **extra) -> dict:
    """A degradation's row (each setting's mean over the clips), printed as it comes."""
    row = {"degradation": label(kind, q), **extra, **{k: round(float(np.mean(v)), 4) for k, v in gains.items()}}
    print(json.dumps(row), flush=True)
    return row


def mean_row(rows: list[dict]) -> dict:
    """Each setting's mean over the rows that have it, printed."""
    keys = dict.fromkeys(k for r in rows for k in r if k != "degradation")
    mean = {k: round(float(np.mean([r[k] for r in rows if k in r])), 4) for k in keys}
    print(json.dumps({"mean over degradations": mean}), flush=True)
    return mean


def label(kind: str, q: int) -> str:
    return f"{kind} {'QP' if kind.startswith('h26') else 'q'}{q}"


def write_json(args: argparse.Namespace, **payload) -> None:
    if args.json:
        head = {"data": args.data, "model": args.model, "frames": args.frames, "preset": args.preset}
        machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
        Path(args.json).write_text(json.dumps({**head, **payload, "machine": machine}, indent=1))
