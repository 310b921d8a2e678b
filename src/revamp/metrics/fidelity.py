"""PSNR and SSIM as deblocking papers compute them.

Inputs are uint8 (or 8-bit-valued float) arrays, HxW or HxWx3. ``channel="y"``
uses BT.601 luma as MATLAB's rgb2ycbcr (16..235, not rounded); ``crop`` removes
that many pixels at each border before measuring.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter


BT601_Y = (65.481, 128.553, 24.966)  # Y's weights of R, G, B in [0, 1], studio range (Y in [16, 235])


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """BT.601 Y in [16, 235] from 8-bit RGB, as MATLAB rgb2ycbcr."""
    img = img.astype(np.float64)
    r, g, b = BT601_Y
    return 16.0 + (r * img[..., 0] + g * img[..., 1] + b * img[..., 2]) / 255.0


def _prepare(a: np.ndarray, b: np.ndarray, channel: str, crop: int) -> tuple[np.ndarray, np.ndarray]:
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    if channel == "y" and a.ndim == 3:
        a, b = rgb_to_y(a), rgb_to_y(b)
    elif channel not in ("y", "rgb"):
        raise ValueError(f"channel must be 'y' or 'rgb', not {channel!r}")
    a, b = a.astype(np.float64), b.astype(np.float64)
    if crop:
        a, b = a[crop:-crop, crop:-crop], b[crop:-crop, crop:-crop]
    return a, b


def _db(mse: float) -> float:
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def psnr(a: np.ndarray, b: np.ndarray, channel: str = "rgb", crop: int = 0) -> float:
    a, b = _prepare(a, b, channel, crop)
    return _db(np.mean((a - b) ** 2))


def edge_mask(reference: np.ndarray, radius: int = 2) -> np.ndarray:
    """Where ringing, halos and mosquito noise live: Canny edges (thresholds 100/200) of the
    reference's 8-bit luma, dilated by ``radius`` pixels. Boolean HxW."""
    import cv2

    ref = np.asarray(reference)
    luma = np.clip(np.rint(rgb_to_y(ref) if ref.ndim == 3 else ref.astype(np.float64)), 0, 255).astype(np.uint8)
    edges = cv2.Canny(luma, 100, 200)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(edges, kernel) > 0


def edge_psnr(a: np.ndarray, b: np.ndarray, channel: str = "rgb", crop: int = 0) -> float:
    """PSNR over the edge region of the reference ``b`` (``edge_mask``) only: the error a
    restoration leaves, or makes, at the borders of objects."""
    mask = edge_mask(b)
    if crop:
        mask = mask[crop:-crop, crop:-crop]
    a, b = _prepare(a, b, channel, crop)
    return _db(np.mean((a[mask] - b[mask]) ** 2)) if mask.any() else float("nan")


def ssim(a: np.ndarray, b: np.ndarray, channel: str = "rgb", crop: int = 0) -> float:
    """Wang et al. 2004 SSIM: Gaussian window sigma 1.5 (11x11), K1=0.01, K2=0.03, L=255;
    colour images average the per-channel SSIM."""
    a, b = _prepare(a, b, channel, crop)
    if a.ndim == 3:
        return float(np.mean([_ssim_gray(a[..., c], b[..., c]) for c in range(a.shape[2])]))
    return _ssim_gray(a, b)


def _ssim_gray(a: np.ndarray, b: np.ndarray) -> float:
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    blur = lambda x: gaussian_filter(x, 1.5, truncate=3.5)  # noqa: E731  (11x11 window)
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    pad = 5  # skimage crops the window half-width before averaging
    return float(s[pad:-pad, pad:-pad].mean())


def _blocking_effect_factor(img: np.ndarray, block: int = 8) -> float:
    """BEF of Yim & Bovik (2011) for one channel, values in [0, 1]: excess of squared
    differences across 8x8 block boundaries over those inside blocks."""
    h, w = img.shape
    bh = np.arange(block - 1, w - 1, block)  # columns left of a vertical boundary
    bv = np.arange(block - 1, h - 1, block)
    nbh = np.setdiff1d(np.arange(w - 1), bh)
    nbv = np.setdiff1d(np.arange(h - 1), bv)
    d_bound = ((img[:, bh] - img[:, bh + 1]) ** 2).sum() + ((img[bv, :] - img[bv + 1, :]) ** 2).sum()
    d_inner = ((img[:, nbh] - img[:, nbh + 1]) ** 2).sum() + ((img[nbv, :] - img[nbv + 1, :]) ** 2).sum()
    n_bh = h * (w // block - 1)
    n_bv = w * (h // block - 1)
    n_nh = h * (w - 1) - n_bh
    n_nv = w * (h - 1) - n_bv
    boundary = d_bound / (n_bh + n_bv)
    inner = d_inner / (n_nh + n_nv)
    if boundary <= inner:
        return 0.0
    return float(np.log2(block) / np.log2(min(h, w)) * (boundary - inner))


def psnr_b(restored: np.ndarray, reference: np.ndarray, channel: str = "rgb", crop: int = 0) -> float:
    """PSNR-B (Yim & Bovik 2011): PSNR with the blocking effect factor of the *restored*
    image added to the MSE; colour images average the per-channel values."""
    a, b = _prepare(restored, reference, channel, crop)
    a, b = a / 255.0, b / 255.0
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    values = []
    for c in range(a.shape[2]):
        mse = np.mean((a[..., c] - b[..., c]) ** 2)
        values.append(10 * np.log10(1.0 / (mse + _blocking_effect_factor(a[..., c]))))
    return float(np.mean(values))
