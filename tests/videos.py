"""Small test videos made on the fly with PyAV: a moving picture, optional AAC audio and subtitles."""
from __future__ import annotations

import hashlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from conftest import natural_image


def moving_frames(n: int, h: int, w: int, seed: int = 0) -> list[np.ndarray]:
    """A natural picture panned by one pixel per frame (real motion for codecs and flow)."""
    big = natural_image(h + n, w + n, seed)
    return [big[i : i + h, i : i + w] for i in range(n)]


def make_video(path: Path, frames: list[np.ndarray] | None = None, n: int = 24, h: int = 64, w: int = 96, codec: str = "libx264",
               fps: int = 25, vfr: bool = False, audio: bool = True, subtitles: bool = True, full_range: bool = False,
               colorspace: int | None = None, rotation: int = 0, sar: Fraction | None = None, options: dict | None = None) -> Path:
    frames = frames if frames is not None else moving_frames(n, h, w)
    h, w = frames[0].shape[:2]
    out = av.open(str(path), "w")
    v = out.add_stream(codec, rate=fps)
    v.width, v.height = w, h
    v.pix_fmt = "yuv420p"
    v.time_base = v.codec_context.time_base = Fraction(1, 1000) if vfr else Fraction(1, fps)
    space = colorspace or 6  # smpte170m (BT.601)
    v.codec_context.colorspace = space
    v.codec_context.color_range = 2 if full_range else 1
    if sar:
        v.codec_context.sample_aspect_ratio = sar
    if rotation:
        v.set_display_rotation(rotation)
    if options:
        v.codec_context.options = options
    a = s = None
    if audio:
        a = out.add_stream("aac", rate=48000)
        a.layout = "stereo"
    if subtitles:
        s = out.add_mux_stream("subrip" if path.suffix == ".mkv" else "mov_text")
        s.time_base = Fraction(1, 1000)
    out.metadata["title"] = "revamp test clip"
    pts = 0
    sws = {1: "itu709", 5: "itu601", 6: "smpte170m"}[space]
    for i, img in enumerate(frames):
        f = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p", dst_colorspace=sws,
                                                                      dst_color_range="JPEG" if full_range else "MPEG", threads=1)
        f.pts = pts
        pts += (40 if i % 3 else 80) if vfr else 1
        for p in v.encode(f):
            out.mux(p)
    for p in v.encode(None):
        out.mux(p)
    if a:
        samples = int(48000 * len(frames) / fps)
        tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(samples) / 48000)).astype(np.float32)
        for k in range(0, samples, 1024):
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(np.stack([tone[k : k + 1024]] * 2)), format="fltp", layout="stereo")
            af.sample_rate, af.pts = 48000, k
            for p in a.encode(af):
                out.mux(p)
        for p in a.encode(None):
            out.mux(p)
    if s:
        for k, text in enumerate(["Hello", "archive"]):
            data = text.encode() if path.suffix == ".mkv" else len(text).to_bytes(2, "big") + text.encode()
            pkt = av.Packet(data)
            pkt.pts = pkt.dts = k * 300
            pkt.duration, pkt.stream, pkt.time_base = 250, s, s.time_base
            out.mux(pkt)
    out.close()
    return path


def frame_times(path: Path) -> list[float]:
    with av.open(str(path)) as c:
        return [float(f.pts * f.time_base) for f in c.decode(video=0)]


def decoded_rgb(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24", threads=1) for f in c.decode(video=0)]


def y_planes(path: Path) -> list[np.ndarray]:
    """The decoded Y plane of each frame (8-bit 4:2:0 files)."""
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="yuv420p", threads=1)[: f.height].astype(np.float64) for f in c.decode(video=0)]


def packet_digests(path: Path, kind: str) -> list[tuple]:
    """(pts, duration, md5) of the non-empty packets of the first stream of ``kind``."""
    with av.open(str(path)) as c:
        streams = getattr(c.streams, kind)
        if not streams:
            return []
        return [(float(p.pts * p.time_base), p.duration * p.time_base, hashlib.md5(bytes(p)).hexdigest())
                for p in c.demux(streams[0]) if p.size and bytes(p) != b"\0\0"]
