"""What a file says about how hard it was compressed.

- JPEG: the quantisation tables in the file, and the IJG (libjpeg) quality that makes them.
- H.264 and MPEG-2: the quantiser of every macroblock and the frame type, as FFmpeg exports them
  (``export_side_data=venc_params``, PyAV's ``VideoEncParams``). FFmpeg's HEVC decoder exports no
  such data, so H.265 files get the pixel estimator below.
- No bitstream at all (a PNG screenshot of a JPEG, a re-encoded file): ``estimate_jpeg_quality``
  reads the quantiser steps back from the 8x8 DCT coefficients of the pixels, which cluster on
  multiples of the step that quantised them.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.fft import dctn

# libjpeg's standard tables (ITU-T T.81 Annex K), natural (row-major) order.
STD_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100,
    103, 99]).reshape(8, 8)
STD_CHROMA = np.array([
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
    *[99] * 32]).reshape(8, 8)
ZIGZAG = np.array([0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
                   35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55,
                   62, 63])


def ijg_table(quality: int, chroma: bool = False) -> np.ndarray:
    """The 8x8 table libjpeg's jpeg_set_quality(quality, force_baseline=TRUE) writes."""
    q = min(max(int(quality), 1), 100)
    scale = 5000 // q if q < 50 else 200 - 2 * q
    return np.clip(((STD_CHROMA if chroma else STD_LUMA) * scale + 50) // 100, 1, 255)


def quality_from_tables(luma: np.ndarray, chroma: np.ndarray | None = None) -> tuple[int, float]:
    """The IJG quality whose tables are closest to these (natural order), and the mean absolute
    difference of the steps (0: the file was made by libjpeg at exactly that quality)."""
    best = (50, float("inf"))
    for q in range(1, 101):
        err = np.abs(ijg_table(q) - luma).mean()
        if chroma is not None:
            err = (err + np.abs(ijg_table(q, chroma=True) - chroma).mean()) / 2
        if err < best[1]:
            best = (q, float(err))
    return best


@dataclass
class JpegInfo:
    quality: int  # nearest IJG quality
    table_error: float  # 0: exactly libjpeg's tables at that quality
    luma: np.ndarray  # 8x8 quantisation steps, natural order
    chroma: np.ndarray | None

    def step_map(self, height: int, width: int) -> np.ndarray:
        """The mean luma step of the block covering each 8x8 block of the picture (JPEG: one table per image)."""
        return np.full(((height + 7) // 8, (width + 7) // 8), float(self.luma.mean()), dtype=np.float32)


def read_jpeg_tables(path: str | Path) -> JpegInfo | None:
    """The quantisation tables of a JPEG file (None for other formats)."""
    from PIL import Image

    with Image.open(path) as im:
        if im.format != "JPEG":
            return None
        tables = {k: np.asarray(v, dtype=np.int64) for k, v in im.quantization.items()}
    # Pillow returns the tables in natural (row-major) order, as libjpeg holds them.
    luma = tables[0].reshape(8, 8)
    chroma = tables[1].reshape(8, 8) if 1 in tables else None
    quality, error = quality_from_tables(luma, chroma)
    return JpegInfo(quality, error, luma, chroma)


@dataclass
class FrameQuantiser:
    index: int
    pict_type: str  # "I", "P", "B", ...
    # Per 16x16 macroblock: H.264 QP (0-51) or MPEG-2 quantiser_scale (2 x FFmpeg's qscale with the
    # linear scale); None where the decoder exported nothing (MPEG-2's last frame, output at flush).
    qp_map: np.ndarray | None


def read_video_qp(path: str | Path, max_frames: int | None = None) -> Iterator[FrameQuantiser]:
    """Per-macroblock quantisers of an H.264 or MPEG-2 stream, frame by frame (display order)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.codec_context.name not in ("h264", "mpeg2video"):
            raise ValueError(f"{path}: FFmpeg exports quantiser maps for H.264 and MPEG-2, not {stream.codec_context.name}")
        stream.codec_context.options = {"export_side_data": "venc_params"}
        for index, frame in enumerate(container.decode(stream)):
            if max_frames is not None and index >= max_frames:
                return
            params = next((d for d in frame.side_data if type(d).__name__ == "VideoEncParams"), None)
            yield FrameQuantiser(index, av.video.frame.PictureType(int(frame.pict_type)).name,
                                 None if params is None else params.qp_map().astype(np.int32))


def _dct_blocks(y: np.ndarray) -> np.ndarray:
    """(N, 64) DCT coefficients of the 8x8 blocks on JPEG's grid, scaled as JPEG quantises them."""
    h, w = (y.shape[0] // 8) * 8, (y.shape[1] // 8) * 8
    blocks = (y[:h, :w] - 128.0).reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3).reshape(-1, 8, 8)
    return dctn(blocks, axes=(1, 2), norm="ortho").reshape(-1, 64)


def estimate_steps(rgb: np.ndarray, positions: int = 10, max_step: int = 64) -> dict[int, int]:
    """Quantiser steps of the first ``positions`` zigzag frequencies (natural index -> step), read
    from how the DCT coefficients of the pixels' luma cluster on multiples of a step."""
    y = rgb.astype(np.float64) @ [0.299, 0.587, 0.114] if rgb.ndim == 3 else rgb.astype(np.float64)
    coeffs = _dct_blocks(y)
    steps = {}
    for k in ZIGZAG[1 : positions + 1]:  # AC only: DC is dominated by the picture itself
        c = coeffs[:, k]
        c = c[np.abs(c) > 0.75]  # zeros fit every step
        if len(c) < 50:
            continue
        scores = {q: float(np.mean(np.cos(2 * np.pi * c / q))) for q in range(2, max_step + 1)}
        # A step's multiples fit its divisors too: take the largest step that fits clearly.
        fitting = [q for q, s in scores.items() if s > 0.6]
        steps[int(k)] = max(fitting) if fitting else 1
    return steps


def estimate_jpeg_quality(rgb: np.ndarray) -> int:
    """IJG quality of the last JPEG compression, from pixels alone (aligned, not resampled)."""
    steps = estimate_steps(rgb)
    if not steps:
        return 100
    idx = np.array(list(steps))
    got = np.array([steps[i] for i in idx])
    errors = [np.abs(np.log(ijg_table(q).reshape(-1)[idx]) - np.log(got)).mean() for q in range(1, 101)]
    return int(np.argmin(errors)) + 1
