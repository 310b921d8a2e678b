"""Classical deblocking a user could run instead: FFmpeg's `spp` and `pp7` filters.

Those filters are GPL and absent from the FFmpeg inside the `av` wheel, so they run through the
system `ffmpeg` binary (Debian package `ffmpeg`); without it the baseline is left out with a
note. Pictures go through pipes as raw gray planes: a colour image is converted to JPEG's own
full-range BT.601 YCbCr (PIL), each plane is filtered, and the result converted back.
"""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
from PIL import Image

QP_GRID = tuple(range(2, 19, 2))
FILTERS = {"spp": "spp=quality=6:qp={qp}", "pp7": "pp7=qp={qp}"}


def ffmpeg_binary() -> str | None:
    return shutil.which("ffmpeg")


def _filter_plane(plane: np.ndarray, vf: str, ffmpeg: str) -> np.ndarray:
    h, w = plane.shape
    cmd = [ffmpeg, "-v", "error", "-f", "rawvideo", "-pix_fmt", "gray", "-s", f"{w}x{h}", "-i", "-",
           "-vf", vf, "-f", "rawvideo", "-pix_fmt", "gray", "-"]
    proc = subprocess.run(cmd, input=np.ascontiguousarray(plane).tobytes(), capture_output=True, check=False)
    if proc.returncode != 0 or len(proc.stdout) != h * w:
        raise RuntimeError(f"ffmpeg -vf {vf} failed: {proc.stderr.decode(errors='replace').strip()[:200]}")
    return np.frombuffer(proc.stdout, np.uint8).reshape(h, w)


def deblock(img: np.ndarray, name: str, qp: int, ffmpeg: str | None = None) -> np.ndarray:
    """uint8 gray (H, W) or RGB (H, W, 3) -> the same, filtered by FFmpeg's `name` at `qp`."""
    ffmpeg = ffmpeg or ffmpeg_binary()
    if ffmpeg is None:
        raise RuntimeError("the system ffmpeg binary is not installed (Debian package ffmpeg)")
    vf = FILTERS[name].format(qp=qp)
    if img.ndim == 2:
        return _filter_plane(img, vf, ffmpeg)
    ycc = np.asarray(Image.fromarray(img).convert("YCbCr"))
    out = np.stack([_filter_plane(ycc[..., c], vf, ffmpeg) for c in range(3)], axis=2)
    return np.asarray(Image.fromarray(out, "YCbCr").convert("RGB"))


def tune_qp(pairs: list[tuple[np.ndarray, np.ndarray]], name: str, score) -> int:
    """The qp of QP_GRID with the best mean ``score(filtered, clean)`` over (compressed, clean) pairs."""
    ffmpeg = ffmpeg_binary()
    means = {qp: float(np.mean([score(deblock(d, name, qp, ffmpeg), c) for d, c in pairs])) for qp in QP_GRID}
    return max(means, key=means.get)
