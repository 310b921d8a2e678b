"""NIQE (Mittal, Soundararajan, Bovik 2013), following the LIVE MATLAB release (computequality.m).

No-reference: lower is more natural. Conventions of the reference: the image is converted to
gray as MATLAB's rgb2gray and rounded, cropped to whole 96x96 blocks, measured at two scales
(the second made with MATLAB's antialiased bicubic imresize by 0.5), and compared with the
pristine-image model shipped as revamp/weights/niqe_pris_params.npz (LIVE parameters, via
BasicSR, Apache-2.0; see docs/weights.md).
"""
from __future__ import annotations

from functools import lru_cache
from math import ceil

import numpy as np
from scipy.ndimage import correlate
from scipy.special import gamma as G

from revamp.models.registry import weights_file

BLOCK = 96
GGD_ALPHAS = np.arange(0.2, 10.001, 0.001)  # the shape parameters a GGD fit searches (NIQE and BRISQUE)
_R_ALPHA = G(2 / GGD_ALPHAS) ** 2 / (G(1 / GGD_ALPHAS) * G(3 / GGD_ALPHAS))
MATLAB_GRAY = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])  # rgb2gray weights


@lru_cache(maxsize=1)
def pristine_model() -> dict[str, np.ndarray]:
    with np.load(weights_file("niqe_pris_params.npz"), allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def _cubic(x: np.ndarray) -> np.ndarray:
    a = np.abs(x)
    return (1.5 * a**3 - 2.5 * a**2 + 1) * (a <= 1) + (-0.5 * a**3 + 2.5 * a**2 - 4 * a + 2) * ((a > 1) & (a <= 2))


def imresize_matlab(img: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB imresize(img, scale, 'bicubic') with antialiasing (downscaling), 2-D float."""
    for axis in (0, 1):
        n = img.shape[axis]
        width = 4.0 / scale if scale < 1 else 4.0
        out_len = int(ceil(n * scale))
        u = np.arange(1, out_len + 1) / scale + 0.5 * (1 - 1 / scale)
        left = np.floor(u - width / 2)
        idx = left[:, None] + np.arange(int(ceil(width)) + 2)[None]
        kernel = (lambda d: scale * _cubic(scale * d)) if scale < 1 else _cubic
        w = kernel(u[:, None] - idx)
        w /= w.sum(axis=1, keepdims=True)
        keep = np.any(w != 0, axis=0)
        w, idx = w[:, keep], idx[:, keep].astype(int)
        mirror = np.concatenate([np.arange(n), np.arange(n)[::-1]])  # symmetric padding
        src = mirror[np.mod(idx - 1, 2 * n)]
        moved = np.moveaxis(img, axis, 0)
        img = np.moveaxis(np.einsum("ij,ij...->i...", w, moved[src]), 0, axis)
    return img


def aggd_fit(x: np.ndarray) -> tuple[float, float, float]:
    """Asymmetric generalised Gaussian fit by moment matching (the LIVE releases'
    estimateaggdparam): (alpha, left std, right std). Shared by NIQE and BRISQUE."""
    x = x.ravel()
    left, right = np.sqrt(np.mean(x[x < 0] ** 2)), np.sqrt(np.mean(x[x > 0] ** 2))
    g = left / right
    r = np.mean(np.abs(x)) ** 2 / np.mean(x**2)
    r_norm = r * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    return float(GGD_ALPHAS[np.argmin((_R_ALPHA - r_norm) ** 2)]), float(left), float(right)


def _aggd(x: np.ndarray) -> tuple[float, float, float]:
    """NIQE's variant: the two stds turned into AGGD scale parameters."""
    alpha, left, right = aggd_fit(x)
    c = np.sqrt(G(1 / alpha) / G(3 / alpha))
    return alpha, float(left * c), float(right * c)


def _block_features(block: np.ndarray) -> list[float]:
    alpha, bl, br = _aggd(block)
    feats = [alpha, (bl + br) / 2]
    for shift in ((0, 1), (1, 0), (1, 1), (-1, 1)):
        alpha, bl, br = _aggd(block * np.roll(block, shift, axis=(0, 1)))
        feats += [alpha, (br - bl) * G(2 / alpha) / G(1 / alpha), bl, br]
    return feats


def _features(img: np.ndarray, window: np.ndarray, block: int) -> np.ndarray:
    mu = correlate(img, window, mode="nearest")
    sigma = np.sqrt(np.abs(correlate(img * img, window, mode="nearest") - mu * mu))
    z = (img - mu) / (sigma + 1)
    nh, nw = img.shape[0] // block, img.shape[1] // block
    return np.array([_block_features(z[i * block : (i + 1) * block, j * block : (j + 1) * block]) for j in range(nw) for i in range(nh)])


def to_gray(img: np.ndarray) -> np.ndarray:
    """uint8 RGB (or gray) -> rounded gray as MATLAB rgb2gray, float64."""
    if img.ndim == 3:
        return np.round(img.astype(np.float64) @ MATLAB_GRAY)
    return img.astype(np.float64)


def niqe(img: np.ndarray, crop: int = 0) -> float:
    gray = to_gray(img)
    if crop:
        gray = gray[crop:-crop, crop:-crop]
    nh, nw = gray.shape[0] // BLOCK, gray.shape[1] // BLOCK
    if nh < 1 or nw < 1:
        raise ValueError(f"NIQE needs an image of at least {BLOCK}x{BLOCK} pixels, got {gray.shape[1]}x{gray.shape[0]}")
    model = pristine_model()
    gray = gray[: nh * BLOCK, : nw * BLOCK]
    scale1 = _features(gray, model["gaussian_window"], BLOCK)
    scale2 = _features(imresize_matlab(gray, 0.5), model["gaussian_window"], BLOCK // 2)
    feats = np.concatenate([scale1, scale2], axis=1)
    diff = model["mu_pris_param"] - np.nanmean(feats, axis=0)
    finite = feats[~np.isnan(feats).any(axis=1)]
    # MATLAB's cov of a single observation is zero (numpy's would be NaN).
    sample_cov = np.cov(finite, rowvar=False) if len(finite) > 1 else np.zeros_like(model["cov_pris_param"])
    cov = (model["cov_pris_param"] + sample_cov) / 2
    return float(np.sqrt(np.squeeze(diff @ np.linalg.pinv(cov) @ diff.T)))
