"""Tiled inference: any image size with bounded memory.

Tiles start on a grid of the model's size multiple (32 px, also a multiple of
the 8x8 JPEG grid and the 16x16 MCU), so each tile sees the same block
alignment and encoder stride phase as the whole image would. Neighbouring
tiles overlap and are blended with linear ramps across the overlap.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

Window = tuple[int, int, int, int]  # y0, y1, x0, x1 in input pixels


def _starts(length: int, tile: int, step: int) -> list[int]:
    starts = list(range(0, max(length - tile, 0) + 1, step))
    if starts[-1] + tile < length:
        starts.append(starts[-1] + step)
    return starts


def tile_windows(h: int, w: int, tile: int, overlap: int, multiple: int = 32) -> list[Window]:
    """Windows covering an h x w image; starts are multiples of ``multiple``."""
    if tile % multiple or tile <= 0:
        raise ValueError(f"tile size must be a positive multiple of {multiple}, not {tile}")
    step = (tile - overlap) // multiple * multiple
    if step <= 0:
        raise ValueError(f"tile overlap {overlap} leaves no step for tile {tile}")
    return [
        (y, min(y + tile, h), x, min(x + tile, w))
        for y in _starts(h, tile, step)
        for x in _starts(w, tile, step)
    ]


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, int, int]:
    """Pad bottom/right to a multiple (reflect, or replicate where the image is too small)."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, ph, pw


def _ramp(length: int, overlap: int, fade_start: bool, fade_end: bool) -> np.ndarray:
    r = np.ones(length, dtype=np.float32)
    n = min(overlap, length // 2)
    if n > 0:
        edge = (np.arange(n, dtype=np.float32) + 0.5) / n
        if fade_start:
            r[:n] = edge
        if fade_end:
            r[-n:] = edge[::-1]
    return r


def restore_tiled(
    run: Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    scale: int = 1,
    tile: int = 512,
    overlap: int = 64,
    multiple: int = 32,
    on_tile: Callable[[], None] | None = None,
) -> np.ndarray:
    """Restore a (C, H, W) float image in [0, 1]; returns (C, H*scale, W*scale) float32 numpy.

    ``run`` maps a (1, C, h, w) tensor, h and w multiples of ``multiple``, to
    (1, C, h*scale, w*scale). The input may stay on the CPU: only one tile at a
    time is converted and moved.
    """
    c, h, w = image.shape
    windows = tile_windows(h, w, tile, overlap, multiple)
    if len(windows) == 1:
        x, ph, pw = pad_to_multiple(image[None], multiple)
        y = run(x)[0, :, : h * scale, : w * scale]
        if on_tile:
            on_tile()
        return y.float().cpu().numpy()
    out = np.zeros((c, h * scale, w * scale), dtype=np.float32)
    weight = np.zeros((h * scale, w * scale), dtype=np.float32)
    for y0, y1, x0, x1 in windows:
        x, _, _ = pad_to_multiple(image[None, :, y0:y1, x0:x1], multiple)
        y = run(x)[0, :, : (y1 - y0) * scale, : (x1 - x0) * scale].float().cpu().numpy()
        wy = _ramp((y1 - y0) * scale, overlap * scale, y0 > 0, y1 < h)
        wx = _ramp((x1 - x0) * scale, overlap * scale, x0 > 0, x1 < w)
        wt = wy[:, None] * wx[None, :]
        out[:, y0 * scale : y1 * scale, x0 * scale : x1 * scale] += y * wt
        weight[y0 * scale : y1 * scale, x0 * scale : x1 * scale] += wt
        if on_tile:
            on_tile()
    out /= weight
    return out
