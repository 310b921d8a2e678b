"""Synthetic degradations: what archive pictures went through, reproducible from a seed.

Every degradation maps a clean uint8 RGB array (H, W, 3) to a degraded uint8
array, drawing its random choices from the numpy Generator it is given.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

SUBSAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}


def jpeg(img: np.ndarray, quality: int, subsampling: str = "4:2:0") -> np.ndarray:
    """One JPEG round trip through libjpeg (PIL), IJG quality scale."""
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=int(quality), subsampling=SUBSAMPLING[subsampling])
    buf.seek(0)
    with Image.open(buf) as decoded:
        return np.asarray(decoded.convert("RGB"))


def double_jpeg(img: np.ndarray, q1: int, q2: int, shift: tuple[int, int], subsampling: str = "4:2:0") -> np.ndarray:
    """Compress, shift the 8x8 grid by (dy, dx) pixels, compress again (a re-saved, re-cropped file)."""
    dy, dx = shift
    first = jpeg(img, q1, subsampling)
    padded = np.pad(first, ((dy, 0), (dx, 0), (0, 0)), mode="edge")
    return jpeg(padded, q2, subsampling)[dy:, dx:]


def downscale(img: np.ndarray, scale: int, method: str = "bicubic", blur: float = 0.0) -> np.ndarray:
    """Downscale by an integer factor (as archive material was made), optionally blurred first."""
    from PIL import ImageFilter

    pil = Image.fromarray(img)
    if blur > 0:
        pil = pil.filter(ImageFilter.GaussianBlur(blur))
    resample = {"bicubic": Image.Resampling.BICUBIC, "area": Image.Resampling.BOX}[method]
    h, w = img.shape[:2]
    return np.asarray(pil.resize((w // scale, h // scale), resample))


@dataclass
class JpegDegradation:
    """Random JPEG compression as in the config's ``degradation.jpeg`` section.

    quality is drawn from [lo, hi] with density biased to low qualities by
    ``quality_power`` (1: uniform; 2: median about a quarter of the range).
    """

    quality: tuple[int, int] = (5, 95)
    quality_power: float = 1.0
    subsampling: dict[str, float] = field(default_factory=lambda: {"4:2:0": 0.8, "4:4:4": 0.2})
    double_prob: float = 0.0

    def sample_quality(self, rng: np.random.Generator) -> int:
        lo, hi = self.quality
        return int(round(lo + (hi - lo) * rng.random() ** self.quality_power))

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        modes = list(self.subsampling)
        probs = np.array([self.subsampling[m] for m in modes], dtype=float)
        mode = modes[rng.choice(len(modes), p=probs / probs.sum())]
        q = self.sample_quality(rng)
        if rng.random() < self.double_prob:
            shift = (int(rng.integers(0, 8)), int(rng.integers(0, 8)))
            return double_jpeg(img, self.sample_quality(rng), q, shift, mode)
        return jpeg(img, q, mode)


@dataclass
class SRDegradation:
    """Downscale (x2/x4), then the JPEG degradation: low-resolution archive files."""

    scale: int
    jpeg: JpegDegradation | None
    methods: tuple[str, ...] = ("bicubic", "area")
    blur_prob: float = 0.0

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        method = self.methods[int(rng.integers(len(self.methods)))]
        blur = float(rng.uniform(0.3, 1.2)) if rng.random() < self.blur_prob else 0.0
        small = downscale(img, self.scale, method, blur)
        return self.jpeg(small, rng) if self.jpeg else small


def build_degradation(cfg: dict, scale: int = 1):
    """Degradation from a config dict: ``{"jpeg": {...}}`` plus optional ``{"downscale": {...}}``."""
    unknown = set(cfg) - {"jpeg", "downscale"}
    if unknown:
        raise ValueError(f"unknown degradation(s): {', '.join(sorted(unknown))}")
    jpeg_cfg = cfg.get("jpeg")
    jpeg_deg = None
    if jpeg_cfg is not None:
        jpeg_deg = JpegDegradation(
            quality=tuple(jpeg_cfg.get("quality", (5, 95))),
            quality_power=float(jpeg_cfg.get("quality_power", 1.0)),
            subsampling=dict(jpeg_cfg.get("subsampling", {"4:2:0": 0.8, "4:4:4": 0.2})),
            double_prob=float(jpeg_cfg.get("double_prob", 0.0)),
        )
    if scale == 1:
        if jpeg_deg is None:
            raise ValueError("an artifact-removal model needs a jpeg degradation")
        return jpeg_deg
    down = cfg.get("downscale", {})
    return SRDegradation(scale, jpeg_deg, tuple(down.get("methods", ("bicubic", "area"))), float(down.get("blur_prob", 0.0)))
