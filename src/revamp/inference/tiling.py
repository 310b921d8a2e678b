"""Tiled inference: any image size with bounded memory.

Tiles start on a grid of the model's size multiple (32 px, also a multiple of
the 8x8 JPEG grid and the 16x16 MCU), so each tile sees the same block
alignment and encoder stride phase as the whole image would. Neighbouring
tiles overlap and are blended with linear ramps across the overlap.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch

from revamp.defaults import TILE, TILE_OVERLAP
from revamp.models.contract import forward

Window = tuple[int, int, int, int]  # y0, y1, x0, x1 in input pixels
Tile = int | tuple[int, int]  # a square tile's side, or (height, width)


def _starts(length: int, tile: int, overlap: int, multiple: int) -> list[int]:
    if tile % multiple or tile <= 0:
        raise ValueError(f"tile size must be a positive multiple of {multiple}, not {tile}")
    step = (tile - overlap) // multiple * multiple
    if step <= 0:
        raise ValueError(f"tile overlap {overlap} leaves no step for tile {tile}")
    starts = list(range(0, max(length - tile, 0) + 1, step))
    if starts[-1] + tile < length:
        starts.append(starts[-1] + step)
    return starts


def tile_windows(h: int, w: int, tile: Tile, overlap: int, multiple: int = 32) -> list[Window]:
    """Windows covering an h x w image, row by row; starts are multiples of ``multiple``."""
    tile_h, tile_w = (tile, tile) if isinstance(tile, int) else tile
    return [
        (y, min(y + tile_h, h), x, min(x + tile_w, w))
        for y in _starts(h, tile_h, overlap, multiple)
        for x in _starts(w, tile_w, overlap, multiple)
    ]


def even_tile(h: int, w: int, tile: int, overlap: int, multiple: int = 32) -> tuple[int, int]:
    """(height, width) of the smallest tiles that cut an h x w picture into as many as ``tile``
    does, so they come out about equal (1280x720 with 768: two of 672 x 736, not 768 and 576 wide)
    and tiles that run side by side finish together (`revamp video`)."""
    return _even_side(h, tile, overlap, multiple), _even_side(w, tile, overlap, multiple)


def _even_side(length: int, tile: int, overlap: int, multiple: int) -> int:
    count = len(_starts(length, tile, overlap, multiple))
    best = tile
    for smaller in range(tile - multiple, overlap + multiple - 1, -multiple):  # smaller tiles: never fewer
        if len(_starts(length, smaller, overlap, multiple)) != count:
            break
        best = smaller
    return best


class TilePool:
    """Restores several tiles at once, each on a thread with one intra-op thread. On a small CPU
    this beats one tile at a time on all cores: a network of many small layers spends much of
    each layer waiting for its threads to meet (2 cores, 720p: bench/tile_workers.py).
    Results are the same up to float rounding (oneDNN may sum in another order per thread count)."""

    def __init__(self, workers: int):
        self.workers = workers
        self.executor = ThreadPoolExecutor(workers, initializer=torch.set_num_threads, initargs=(1,), thread_name_prefix="revamp-tile")

    def map_in_order(self, fn: Callable, items: list) -> Iterator:
        """``fn(*item)`` for each item, in order, at most ``workers`` at once (memory stays bounded)."""
        pending: deque[Future] = deque()
        for item in items:
            if len(pending) == self.workers:
                yield pending.popleft().result()
            pending.append(self.executor.submit(fn, *item))
        while pending:
            yield pending.popleft().result()


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
    tile: Tile = TILE,
    overlap: int = TILE_OVERLAP,
    multiple: int = 32,
    on_tile: Callable[[], None] | None = None,
    dest: np.ndarray | None = None,
    condition: Callable[[int, int, int, int], np.ndarray] | None = None,
    pool: TilePool | None = None,
) -> np.ndarray:
    """Restore a (C, H, W) float image in [0, 1]; returns (C, H*scale, W*scale) float32 numpy, or
    fills ``dest``, an (H*scale, W*scale, C) float32 array, and returns it.

    ``run`` maps a (1, C, h, w) tensor, h and w multiples of ``multiple``, to
    (1, C, h*scale, w*scale). The input may stay on the CPU: only one tile at a time (with
    ``pool``, one per worker) is converted and moved. Tiles go row by row and only the current
    row of tiles is blended in a float32 band; rows are written out as soon as no later tile touches them. So
    ``dest`` may be the input itself (scale 1, ``image`` a view of it): rows are overwritten only
    once no later tile reads them, and a big picture needs no second full-size buffer.
    ``condition(y0, y1, x0, x1)`` gives extra input planes for a window (codec-aware models),
    made per tile so no full-size copy exists. ``pool``: restore tiles side by side (TilePool).
    """
    c, h, w = image.shape
    windows = tile_windows(h, w, tile, overlap, multiple)
    out = np.empty((c, h * scale, w * scale), dtype=np.float32) if dest is None else None
    # The windows form a grid, so the summed blending weight is separable: weight(y, x) =
    # row_weight(y) * col_weight(x), two vectors instead of a full-size map.
    row_weight = np.zeros(h * scale, dtype=np.float32)
    col_weight = np.zeros(w * scale, dtype=np.float32)

    def emit(band: np.ndarray, start: int) -> None:
        rows = slice(start, start + band.shape[0])
        weight = (row_weight[rows, None] * col_weight[None, :])[..., None]
        if dest is None:
            out[:, rows] = (band / weight).transpose(2, 0, 1)
        else:
            np.divide(band, weight, out=dest[rows])

    def restored(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        x = image[None, :, y0:y1, x0:x1]
        if condition is not None:
            x = torch.cat([x, torch.from_numpy(condition(y0, y1, x0, x1))[None]], dim=1)
        return forward(run, x, multiple, scale)[0].permute(1, 2, 0).cpu().numpy()

    # With a pool, tiles are read while earlier ones are blended: safe in place too, as a tile
    # reads only rows at or below its row's top, and only rows above that have been written.
    results = pool.map_in_order(restored, windows) if pool is not None and len(windows) > 1 else (restored(*win) for win in windows)
    # The band is (rows, width, channels), as `dest` and as a channels_last network output are laid
    # out, so blending reads and writes contiguous memory.
    band, band_start, band_rows = None, 0, None
    for (y0, y1, x0, x1), y in zip(windows, results):
        if (y0, y1) != band_rows:  # a new row of tiles
            new = np.zeros(((y1 - y0) * scale, w * scale, c), dtype=np.float32)
            if band is not None:  # rows above this tile row are final; the overlap carries over
                keep = y0 * scale - band_start
                new[: band.shape[0] - keep] = band[keep:]
                emit(band[:keep], band_start)
            band, band_start, band_rows = new, y0 * scale, (y0, y1)
        wy = _ramp((y1 - y0) * scale, overlap * scale, y0 > 0, y1 < h)
        wx = _ramp((x1 - x0) * scale, overlap * scale, x0 > 0, x1 < w)
        band[:, x0 * scale : x1 * scale] += y * (wy[:, None] * wx[None, :])[..., None]
        if x0 == 0:
            row_weight[y0 * scale : y1 * scale] += wy
        if y0 == 0:
            col_weight[x0 * scale : x1 * scale] += wx
        if on_tile:
            on_tile()
    emit(band, band_start)
    return out if dest is None else dest
