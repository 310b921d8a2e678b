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
from torch.utils.data import Dataset, Sampler

from revamp.codec import BLIND, CodecHint
from revamp.imageio import INPUT_SUFFIXES
from revamp.models.contract import model_input


def list_images(folders: list[str | Path]) -> list[Path]:
    files: list[Path] = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"training folder not found: {folder}")
        files += sorted(p for p in folder.rglob("*") if p.suffix.lower() in INPUT_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no images in {', '.join(map(str, folders))}")
    return files


def split_train_val(files: list[Path], val_count: int) -> tuple[list[Path], list[Path]]:
    """Deterministic split by a hash of the file name: the same files are held out on every machine."""
    ranked = sorted(files, key=lambda p: hashlib.sha1(p.name.encode()).hexdigest())
    val = sorted(ranked[:val_count])
    return [f for f in files if f not in set(val)], val


def list_clips(folders: list[str | Path]) -> list[list[Path]]:
    """Training clips: every folder (at any depth) that holds two or more frame images, frames in name order."""
    clips = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"clip folder not found: {folder}")
        for d in sorted({folder, *(p for p in folder.rglob("*") if p.is_dir())}):
            frames = sorted(p for p in d.iterdir() if p.suffix.lower() in INPUT_SUFFIXES)
            if len(frames) >= 2:
                clips.append(frames)
    if not clips:
        raise FileNotFoundError(f"no clips (folders of frames) in {', '.join(map(str, folders))}")
    return clips


def to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(img, copy=True)).permute(2, 0, 1).float().div_(255)


class PairDataset(Dataset):
    """Index i -> (degraded, clean) float tensors in [0, 1], CHW.

    ``patch`` is the size of the degraded input; the clean target is
    ``patch * scale``. Images and clips smaller than the target crop are skipped (``skipped_clips``
    counts the clips). With ``condition`` the input carries the codec-conditioning planes after its
    RGB channels (``revamp.codec``): the true step of the degradation, or blind for a share
    ``blind_prob`` of the samples. With
    ``neighbours`` (multi-frame models) the aligned neighbouring frames follow: those the video
    degradation decoded, or, for a still, the degraded crop itself (``neighbour_quality``: then their
    quality planes, neutral for a still). ``gray_prob``: the share of still crops made gray (the
    BT.601 luma in all three channels) before degradation; a gray picture in a colour JPEG decodes
    exactly as its one-component JPEG (flat chroma is coded exactly), so these are gray JPEGs.
    """

    def __init__(self, images: list[np.ndarray], patch: int, degradation, seed: int, scale: int = 1, length: int = 2**62,
                 condition: bool = False, blind_prob: float = 0.0, clips: list[np.ndarray] | None = None, clip_prob: float = 0.0,
                 clip_degradation=None, neighbours: int = 0, neighbour_quality: bool = False, gray_prob: float = 0.0):
        crop = patch * scale
        self.images = [im for im in images if min(im.shape[:2]) >= crop]
        if not self.images:
            raise ValueError(f"no training image is at least {crop}x{crop} pixels")
        self.patch, self.scale, self.crop = patch, scale, crop
        self.degradation, self.seed, self.length = degradation, seed, length
        self.condition, self.blind_prob, self.gray_prob = condition, blind_prob, gray_prob
        self.neighbours, self.neighbour_quality = neighbours, neighbour_quality
        # Real clips (T, H, W, 3) with at least the codec's window of frames, each at least a crop in size.
        self.clip_degradation = clip_degradation
        window = clip_degradation.frames if clip_degradation else 0
        self.clips = [c for c in clips or [] if len(c) >= window and min(c.shape[1:3]) >= crop]
        self.skipped_clips = len(clips or []) - len(self.clips)
        self.clip_prob = clip_prob if self.clips else 0.0

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index])
        if self.clip_prob and rng.random() < self.clip_prob:
            clean, degraded, step = self._clip_sample(rng)
        else:
            img = self.images[int(rng.integers(len(self.images)))]
            clean = self._augment(self._crop(img, rng), rng)
            if self.gray_prob and rng.random() < self.gray_prob:  # drawn only when asked: older runs keep their samples
                clean = np.repeat(np.round(clean @ [0.299, 0.587, 0.114]).astype(np.uint8)[..., None], 3, axis=-1)
            degraded, step = self.degradation.sample(clean, rng)
        if degraded.shape[:2] != (self.patch, self.patch):
            raise ValueError(f"degradation gave {degraded.shape[:2]}, expected {self.patch}x{self.patch} (scale {self.scale})")
        hint = None
        if self.condition:
            blind = step is None or rng.random() < self.blind_prob
            hint = BLIND if blind else CodecHint.constant(step, self.patch, self.patch, "training")
        image = to_tensor(degraded)  # its RGB, then those of any aligned neighbours a video degradation decoded
        planes = None if hint is None else hint.planes(0, self.patch, 0, self.patch)
        x = model_input(image[:3], 0 if planes is None else len(planes), self.neighbours, planes, image[3:], self.neighbour_quality)
        return x, to_tensor(clean)

    def _crop(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A random crop of an image (H, W, 3) or, with the same window in every frame, a clip (T, H, W, 3)."""
        h, w = img.shape[-3:-1]
        y, x = int(rng.integers(0, h - self.crop + 1)), int(rng.integers(0, w - self.crop + 1))
        return img[..., y : y + self.crop, x : x + self.crop, :]

    @staticmethod
    def _augment(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A random rotation by 90-degree steps and horizontal flip, the same for every frame of a clip."""
        img = np.rot90(img, int(rng.integers(4)), axes=(-3, -2))
        if rng.random() < 0.5:
            img = img[..., ::-1, :]
        return np.ascontiguousarray(img)

    def _clip_sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float | None]:
        """A window of consecutive frames of a real clip (played forwards or backwards) through the
        video codec; one random frame of it is the sample."""
        clip = self.clips[int(rng.integers(len(self.clips)))]
        n = self.clip_degradation.frames
        start = int(rng.integers(len(clip) - n + 1))
        window = self._augment(self._crop(clip[start : start + n], rng), rng)
        if rng.random() < 0.5:
            window = window[::-1]
        k = int(rng.integers(n))
        degraded, step = self.clip_degradation.sample_clip(list(window), k, rng)
        return np.ascontiguousarray(window[k]), degraded, step


class RangeSampler(Sampler[int]):
    """Yields start, start+1, ... stop-1, strided across distributed ranks."""

    def __init__(self, start: int, stop: int, rank: int = 0, world: int = 1):
        self.start, self.stop, self.rank, self.world = start, stop, rank, world

    def __iter__(self):
        return iter(range(self.start + self.rank, self.stop, self.world))

    def __len__(self) -> int:
        return len(range(self.start + self.rank, self.stop, self.world))
