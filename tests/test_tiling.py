import numpy as np
import pytest
import torch
from conftest import natural_image

from revamp.inference.tiling import restore_tiled, tile_windows
from revamp.metrics import psnr


def test_windows_cover_the_image_on_the_32px_grid():
    h, w = 700, 1000
    wins = tile_windows(h, w, tile=256, overlap=64)
    covered = np.zeros((h, w), bool)
    for y0, y1, x0, x1 in wins:
        assert y0 % 32 == 0 and x0 % 32 == 0
        assert y1 - y0 <= 256 and x1 - x0 <= 256
        covered[y0:y1, x0:x1] = True
    assert covered.all()


def test_bad_tile_settings():
    with pytest.raises(ValueError, match="multiple of 32"):
        tile_windows(100, 100, tile=100, overlap=10)
    with pytest.raises(ValueError, match="no step"):
        tile_windows(1000, 1000, tile=64, overlap=64)


def test_blending_of_a_pointwise_function_is_exact():
    image = torch.rand(3, 300, 410)
    out = restore_tiled(lambda x: x * 0.5, image, tile=128, overlap=32)
    assert np.allclose(out, image.numpy() * 0.5, atol=1e-6)


def test_super_resolution_tiles_line_up():
    image = torch.rand(3, 150, 170)
    up = lambda x: torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")  # noqa: E731
    out = restore_tiled(up, image, scale=2, tile=64, overlap=32)
    assert out.shape == (3, 300, 340)
    assert np.allclose(out, up(image[None])[0].numpy(), atol=1e-6)


def _as_uint8(chw: np.ndarray) -> np.ndarray:
    return (np.clip(chw, 0, 1) * 255 + 0.5).astype(np.uint8).transpose(1, 2, 0)


def test_tiled_matches_whole_with_the_default_model(restorer):
    from revamp.codec import CodecHint, ijg_table, jpeg_step
    from revamp.data.degrade import jpeg

    img = jpeg(natural_image(384, 512, seed=3), 20)
    x = torch.from_numpy(img.transpose(2, 0, 1).astype(np.float32) / 255)
    assert restorer.codec_aware  # so the quantiser planes are tiled too, as restore_rgb does
    planes = CodecHint.constant(jpeg_step(ijg_table(20)), 384, 512, "JPEG q20").planes
    whole = _as_uint8(restore_tiled(restorer._run, x, tile=512, overlap=64, condition=planes))
    tiled = _as_uint8(restore_tiled(restorer._run, x, tile=192, overlap=64, condition=planes))
    assert len(tile_windows(384, 512, 192, 64)) > 4
    assert psnr(tiled, whole) >= 45.0
    # No seam: along tile borders the tiled result differs from the whole-image result
    # no more than elsewhere (a seam would concentrate the error on those lines).
    diff = np.abs(tiled.astype(int) - whole.astype(int)).max(axis=2)
    borders = sorted({x0 for _, _, x0, _ in tile_windows(384, 512, 192, 64) if x0 > 0})
    seam_cols = np.concatenate([diff[:, b - 2 : b + 2] for b in borders], axis=1)
    assert seam_cols.mean() <= diff.mean() * 3 + 0.5
    assert np.percentile(diff, 99.9) <= 8


def test_restoring_in_place_gives_the_same_picture():
    """The batch path restores big pictures over their own buffer (no second full-size array)."""
    rng = np.random.default_rng(3)
    image = rng.random((300, 410, 3), dtype=np.float32)

    def run(x):  # a neighbourhood operation, so tiles really read their overlaps
        return torch.nn.functional.avg_pool2d(x, 3, 1, 1, count_include_pad=False)

    expected = restore_tiled(run, torch.from_numpy(image.copy()).permute(2, 0, 1), tile=128, overlap=32).transpose(1, 2, 0)
    buffer = image.copy()
    got = restore_tiled(run, torch.from_numpy(buffer).permute(2, 0, 1), tile=128, overlap=32, dest=buffer)
    assert got is buffer and np.array_equal(got, expected)


def test_even_tiles_keep_the_count_and_cut_equal_sizes():
    """`revamp video` runs a frame's tiles side by side: 1280 px in two 672s, not 768 + 576."""
    from revamp.inference.tiling import even_tile

    assert even_tile(720, 1280, 768, 64) == (736, 672)
    assert tile_windows(720, 1280, (736, 672), 64) == [(0, 720, 0, 672), (0, 720, 608, 1280)]
    for h, w in ((720, 1280), (1080, 1920), (2160, 3840), (576, 720), (300, 410), (2000, 90)):
        tile = even_tile(h, w, 768, 64)
        assert max(tile) <= 768 and len(tile_windows(h, w, tile, 64)) == len(tile_windows(h, w, 768, 64))
        for axis in (0, 1):  # each side is the smallest that keeps the count
            smaller = list(tile)
            smaller[axis] -= 32
            assert tile[axis] == 96 or len(tile_windows(h, w, tuple(smaller), 64)) > len(tile_windows(h, w, 768, 64))


def test_tiles_side_by_side_give_the_same_picture():
    from revamp.inference.tiling import TilePool

    rng = np.random.default_rng(4)
    image = rng.random((300, 410, 3), dtype=np.float32)

    def run(x):
        return torch.nn.functional.avg_pool2d(x, 3, 1, 1, count_include_pad=False)

    expected = restore_tiled(run, torch.from_numpy(image).permute(2, 0, 1), tile=128, overlap=32)
    pool = TilePool(2)
    got = restore_tiled(run, torch.from_numpy(image).permute(2, 0, 1), tile=128, overlap=32, pool=pool)
    assert np.array_equal(got, expected)
    buffer = image.copy()  # in place, as the batch path restores big pictures
    restore_tiled(run, torch.from_numpy(buffer).permute(2, 0, 1), tile=128, overlap=32, dest=buffer, pool=pool)
    assert np.array_equal(buffer, expected.transpose(1, 2, 0))


def test_the_restorer_gives_the_same_picture_with_and_without_side_by_side_tiles(restorer):
    """One intra-op thread per tile changes at most the float rounding (oneDNN may sum in another order)."""
    from revamp.data.degrade import jpeg

    rgb = jpeg(natural_image(256, 448, seed=5), 20).astype(np.float32) / 255
    pool, tile = restorer.tile_pool, restorer.tile
    assert pool is not None or torch.get_num_threads() == 1
    try:
        restorer.tile = 192
        assert restorer.tile_count(448, 256) > 2
        side_by_side = restorer.restore_rgb(rgb.copy())
        restorer.tile_pool = None
        alone = restorer.restore_rgb(rgb.copy())
    finally:
        restorer.tile_pool, restorer.tile = pool, tile
    assert np.abs(side_by_side - alone).max() <= 1e-5
