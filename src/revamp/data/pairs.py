"""Training pairs made on the fly: clean crops from image folders, degraded in DataLoader workers.

Sample ``i`` is fully determined by (seed, i): its image, crop, augmentation and
degradation come from ``numpy.random.default_rng([seed, i])``. Training draws
samples 0, 1, 2, ... in order, so a resumed run sees exactly the same data.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

from revamp.codec import BLIND, CodecHint

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def list_images(folders: list[str | Path]) -> list[Path]:
    files: list[Path] = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"training folder not found: {folder}")
        files += sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no images in {', '.join(map(str, folders))}")
    return files


def split_train_val(files: list[Path], val_count: int) -> tuple[list[Path], list[Path]]:
    """Deterministic split by a hash of the file name: the same files are held out on every machine."""
    ranked = sorted(files, key=lambda p: hashlib.sha1(p.name.encode()).hexdigest())
    val = sorted(ranked[:val_count])
    return [f for f in files if f not in set(val)], val


def load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(img, copy=True)).permute(2, 0, 1).float().div_(255)


class PairDataset(Dataset):
    """Index i -> (degraded, clean) float tensors in [0, 1], CHW.

    ``patch`` is the size of the degraded input; the clean target is
    ``patch * scale``. Images smaller than the target crop are skipped. With ``condition`` the
    input carries the codec-conditioning planes after its RGB channels (``revamp.codec``): the
    true step of the degradation, or blind for a share ``blind_prob`` of the samples.
    """

    def __init__(self, images: list[np.ndarray], patch: int, degradation, seed: int, scale: int = 1, length: int = 2**62,
                 condition: bool = False, blind_prob: float = 0.0):
        crop = patch * scale
        self.images = [im for im in images if min(im.shape[:2]) >= crop]
        if not self.images:
            raise ValueError(f"no training image is at least {crop}x{crop} pixels")
        self.patch, self.scale, self.crop = patch, scale, crop
        self.degradation, self.seed, self.length = degradation, seed, length
        self.condition, self.blind_prob = condition, blind_prob

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index])
        img = self.images[int(rng.integers(len(self.images)))]
        h, w = img.shape[:2]
        y, x = int(rng.integers(0, h - self.crop + 1)), int(rng.integers(0, w - self.crop + 1))
        clean = img[y : y + self.crop, x : x + self.crop]
        clean = np.rot90(clean, int(rng.integers(4)))
        if rng.random() < 0.5:
            clean = clean[:, ::-1]
        clean = np.ascontiguousarray(clean)
        degraded, step = self.degradation.sample(clean, rng)
        if degraded.shape[:2] != (self.patch, self.patch):
            raise ValueError(f"degradation gave {degraded.shape[:2]}, expected {self.patch}x{self.patch} (scale {self.scale})")
        x = to_tensor(degraded)
        if self.condition:
            blind = step is None or rng.random() < self.blind_prob
            hint = BLIND if blind else CodecHint.constant(step, self.patch, self.patch, "training")
            x = torch.cat([x, torch.from_numpy(hint.planes(0, self.patch, 0, self.patch))])
        return x, to_tensor(clean)


class RangeSampler(Sampler[int]):
    """Yields start, start+1, ... stop-1, strided across distributed ranks."""

    def __init__(self, start: int, stop: int, rank: int = 0, world: int = 1):
        self.start, self.stop, self.rank, self.world = start, stop, rank, world

    def __iter__(self):
        return iter(range(self.start + self.rank, self.stop, self.world))

    def __len__(self) -> int:
        return len(range(self.start + self.rank, self.stop, self.world))
