"""What a file says about how hard it was compressed.

- JPEG: the quantisation tables in the file, and the IJG (libjpeg) quality that makes them.
- H.264, MPEG-2 and MPEG-4 Part 2: the quantiser of every macroblock and the frame type, as FFmpeg
  exports them (``export_side_data=venc_params``, PyAV's ``VideoEncParams``).
- H.265: FFmpeg's HEVC decoder exports no such data; each picture's slice QP is read from the
  bitstream's headers instead (revamp.hevc) and travels with the packet to its decoded frame.
- No bitstream at all (a PNG screenshot of a JPEG, a re-encoded file): ``estimate_jpeg_quality``
  reads the quantiser steps back from the 8x8 DCT coefficients of the pixels, which cluster on
  multiples of the step that quantised them.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
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
    size: tuple[int, int] = (0, 0)  # width, height


def read_jpeg_tables(path: str | Path) -> JpegInfo | None:
    """The quantisation tables of a JPEG file (None for other formats)."""
    from PIL import Image

    with Image.open(path) as im:
        if im.format != "JPEG":
            return None
        tables = {k: np.asarray(v, dtype=np.int64) for k, v in im.quantization.items()}
        size = im.size
    # Pillow returns the tables in natural (row-major) order, as libjpeg holds them.
    luma = tables[0].reshape(8, 8)
    chroma = tables[1].reshape(8, 8) if 1 in tables else None
    quality, error = quality_from_tables(luma, chroma)
    return JpegInfo(quality, error, luma, chroma, size)


# Decoders whose quantisers FFmpeg exports (export_side_data=venc_params); HEVC's exports nothing.
QP_MAP_CODECS = ("h264", "mpeg2video", "mpeg4")
# FFmpeg's decoder name -> the codec's name in training configs and `revamp eval --degrade`.
VIDEO_CODEC_NAMES = {"h264": "h264", "hevc": "h265", "mpeg2video": "mpeg2", "mpeg4": "mpeg4"}


@dataclass
class FrameQuantiser:
    index: int
    pict_type: str  # "I", "P", "B", ...
    # Per 16x16 macroblock: H.264 QP (0-51) or MPEG-2 quantiser_scale (2 x FFmpeg's qscale with the
    # linear scale); None where the decoder exported nothing (MPEG-2's last frame, output at flush).
    qp_map: np.ndarray | None


def read_video_qp(path: str | Path, max_frames: int | None = None) -> Iterator[FrameQuantiser]:
    """Per-macroblock quantisers of an H.264, MPEG-2 or MPEG-4 Part 2 stream, frame by frame (display order)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.codec_context.name not in QP_MAP_CODECS:
            raise ValueError(f"{path}: FFmpeg exports quantiser maps for H.264, MPEG-2 and MPEG-4, not {stream.codec_context.name}")
        stream.codec_context.options = {"export_side_data": "venc_params"}
        stream.thread_type = "SLICE"  # frame threads race the export (revamp.video.io.decode_frames)
        for index, frame in enumerate(container.decode(stream)):
            if max_frames is not None and index >= max_frames:
                return
            params = video_enc_params(frame)
            yield FrameQuantiser(index, av.video.frame.PictureType(int(frame.pict_type)).name,
                                 None if params is None else params.qp_map().astype(np.int32))


def jpeg_luma(rgb: np.ndarray) -> np.ndarray:
    """JFIF's Y (float64), the plane a JPEG's luma table quantises; gray pictures as they are."""
    return rgb.astype(np.float64) @ [0.299, 0.587, 0.114] if rgb.ndim == 3 else rgb.astype(np.float64)


def block_dct(y: np.ndarray) -> np.ndarray:
    """(rows, cols, 8, 8) DCT coefficients of the full 8x8 blocks on JPEG's grid, level-shifted and
    scaled (orthonormal) as JPEG quantises them."""
    h, w = (y.shape[0] // 8) * 8, (y.shape[1] // 8) * 8
    blocks = (y[:h, :w] - 128.0).reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3)
    return dctn(blocks, axes=(2, 3), norm="ortho")


def estimate_steps(rgb: np.ndarray, positions: int = 10, max_step: int = 64) -> dict[int, int]:
    """Quantiser steps of the first ``positions`` zigzag frequencies (natural index -> step), read
    from how the DCT coefficients of the pixels' luma cluster on multiples of a step."""
    coeffs = block_dct(jpeg_luma(rgb)).reshape(-1, 64)
    steps = {}
    for k in ZIGZAG[1 : positions + 1]:  # AC only: DC is dominated by the picture itself
        c = coeffs[:, k]
        c = c[np.abs(c) > 0.75]  # zeros fit every step
        if len(c) < 50:
            continue
        # Only steps that most coefficients reach: small coefficients "fit" any large step (cos ~ 1).
        mag = np.abs(c)
        scores = {q: float(np.mean(np.cos(2 * np.pi * c / q))) for q in range(2, max_step + 1) if np.mean(mag > q / 2) > 0.5}
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


# What a codec-aware model is told: the quantiser step of each block, in pixel units of an
# orthonormal 8x8 DCT (JPEG's, MPEG-2's; H.264/H.265's Qstep is defined to match). So one number
# means about the same damage whatever the codec was.
def jpeg_step(luma_table: np.ndarray) -> float:
    """Mean step of the luma table: the whole table scales with the IJG quality."""
    return float(np.mean(luma_table))


def h26x_step(qp: float | np.ndarray) -> float | np.ndarray:
    """H.264/H.265 Qstep: 0.625 at QP 0, doubling every 6 QP."""
    return 0.625 * 2.0 ** (np.asarray(qp, dtype=np.float64) / 6)


def mpeg_step(quantiser_scale: float | np.ndarray) -> float | np.ndarray:
    """MPEG-2/MPEG-4 Part 2: FFmpeg exports quantiser_scale (2 x qscale), the inter step with the
    default flat matrix (MPEG-2) and H.263 quantisation (MPEG-4)."""
    return np.asarray(quantiser_scale, dtype=np.float64)


def condition_value(step: np.ndarray | float) -> np.ndarray:
    """Step -> [0, 1]: log2 of steps 1..256 over 8 (JPEG q95 is about 0.3, q10 about 0.95,
    H.264 QP 37 about 0.69)."""
    return np.clip(np.log2(np.maximum(np.asarray(step, dtype=np.float64), 1.0)) / 8, 0, 1).astype(np.float32)


CONDITION_CHANNELS = 2  # the step plane, and a plane that says whether it is known


@dataclass
class CodecHint:
    """What the model is told about a picture: quantiser steps over blocks of ``block`` pixels,
    or nothing (``steps`` None: blind, the model falls back to guessing from the pixels)."""

    steps: np.ndarray | None
    block: int = 8
    source: str = "blind"
    codec: str | None = None  # the video codec that reported it (VIDEO_CODEC_NAMES' values: h264, h265, ...)

    @classmethod
    def constant(cls, step: float, height: int, width: int, source: str, codec: str | None = None) -> CodecHint:
        return cls(np.full(((height + 7) // 8, (width + 7) // 8), step, dtype=np.float32), 8, source, codec)

    @property
    def mean_step(self) -> float | None:
        """The picture's mean quantiser step (None: blind)."""
        return None if self.steps is None else float(np.mean(self.steps))

    def scaled(self, factor: float) -> CodecHint:
        """The same hint with every step times ``factor`` (blind stays blind)."""
        return self if self.steps is None or factor == 1 else replace(self, steps=self.steps * np.float32(factor))

    def planes(self, y0: int, y1: int, x0: int, x1: int, strength: float = 1.0) -> np.ndarray:
        """(2, y1-y0, x1-x0) float32 input planes for a window of the picture. ``strength``
        scales the step the model is told about (0: as if uncompressed, 2: twice as coarse)."""
        out = np.zeros((CONDITION_CHANNELS, y1 - y0, x1 - x0), dtype=np.float32)
        if self.steps is None:
            return out
        b = self.block
        # Per block first, then spread to pixels: the log is taken once per block.
        values = condition_value(self.steps[y0 // b : (y1 + b - 1) // b, x0 // b : (x1 + b - 1) // b] * strength)
        full = np.repeat(np.repeat(values, b, axis=0), b, axis=1)[y0 % b :, x0 % b :]
        # Maps can be a block short of the picture (MPEG-2 pads to 16): repeat the last block.
        full = np.pad(full, ((0, max(y1 - y0 - full.shape[0], 0)), (0, max(x1 - x0 - full.shape[1], 0))), mode="edge")
        out[0] = full[: y1 - y0, : x1 - x0]
        out[1] = 1.0
        return out


BLIND = CodecHint(None)


def hint_for_image(path, rgb: np.ndarray | None) -> CodecHint:
    """The file's JPEG tables if it has them (``path``: a file name or file object); else the pixel
    estimator on ``rgb`` (uint8, or float in [0, 1]) when it finds a JPEG grid (quality below 95);
    else blind."""
    info = read_jpeg_tables(path) if path is not None else None
    if info is not None:
        # The decoded size (EXIF orientation may have turned the picture), else the file's.
        h, w = rgb.shape[:2] if rgb is not None else info.size[::-1]
        return CodecHint.constant(jpeg_step(info.luma), h, w, f"JPEG tables (IJG quality {info.quality})")
    if rgb is None:
        return BLIND
    h, w = rgb.shape[:2]
    # A central 1024-px window on the 8x8 grid is plenty of blocks, and keeps big pictures cheap.
    y0, x0 = max(h // 2 - 512, 0) // 8 * 8, max(w // 2 - 512, 0) // 8 * 8
    window = rgb[y0 : y0 + 1024, x0 : x0 + 1024]
    quality = estimate_jpeg_quality(window * 255 if window.dtype.kind == "f" else window)
    if quality < 95:
        return CodecHint.constant(jpeg_step(ijg_table(quality)), h, w, f"pixel estimate (JPEG quality {quality})")
    return BLIND


def video_enc_params(frame):
    """A decoded PyAV frame's VideoEncParams side data, or None. Looked up by type: PyAV 18.1.1 made
    ``side_data`` a true mapping, whose iteration gives the types, not the data."""
    from av.sidedata.sidedata import Type

    return frame.side_data.get(Type.VIDEO_ENC_PARAMS)


def hint_for_video_frame(frame, codec: str) -> CodecHint:
    """Per-macroblock steps from a decoded PyAV frame's VideoEncParams (decoder opened with
    ``export_side_data=venc_params``); for HEVC the picture's slice QP, which the decoder carries
    from the packet as ``frame.opaque`` (revamp.video.io.decode_frames); else blind."""
    if codec == "hevc":
        qp = frame.opaque
        if not isinstance(qp, float):
            return BLIND
        return CodecHint.constant(float(h26x_step(qp)), frame.height, frame.width, "hevc slice QP", "h265")
    params = video_enc_params(frame)
    if params is None or codec not in QP_MAP_CODECS:
        return BLIND
    qp = _qp_map(params, frame.width, frame.height)
    steps = h26x_step(qp) if codec == "h264" else mpeg_step(qp)
    return CodecHint(np.asarray(steps, dtype=np.float32), 16, f"{codec} quantisers", VIDEO_CODEC_NAMES[codec])


def _qp_map(params, width: int, height: int) -> np.ndarray:
    """Per-16x16-block QPs. Interlaced (field or MBAFF) pictures export more blocks than the frame
    has macroblocks, which PyAV's qp_map refuses: their blocks are painted by position instead."""
    try:
        return params.qp_map().astype(np.float64)
    except RuntimeError:
        qp = np.full(((height + 15) // 16, (width + 15) // 16), float(params.qp))
        for i in range(params.nb_blocks):
            b = params.block_params(i)
            qp[b.src_y // 16 : max((b.src_y + b.h) // 16, b.src_y // 16 + 1),
               b.src_x // 16 : max((b.src_x + b.w) // 16, b.src_x // 16 + 1)] = params.qp + b.delta_qp
        return qp
