"""How a generator is called, in one place: what its input holds, and how a picture of any size goes
in and comes out.

The input is (N, C, H, W) float in [0, 1]: the RGB picture, then ``cond_channels`` codec planes
(revamp.codec.CodecHint.planes: what the file says about its quantisers), then ``2 * neighbours``
aligned neighbouring frames as RGB (multi-frame models; a still picture is its own neighbour), then
with ``neighbour_quality`` a quality plane for each (revamp.video.neighbours). H and
W are padded to the network's ``size_multiple`` (its encoder's stride); the output is cropped back
to (H * scale, W * scale) and clamped to [0, 1].
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

NEUTRAL_QUALITY = 0.5  # a neighbour's quality plane where it is the frame itself, or of unknown step


def model_input(image: torch.Tensor, cond_channels: int, n: int, hint_planes: np.ndarray | torch.Tensor | None = None,
                neighbours: torch.Tensor | None = None, quality: bool = False) -> torch.Tensor:
    """The input of a network with ``cond_channels`` codec planes and ``n`` neighbours on each side
    (and ``quality``: its ``neighbour_quality``; its UNetConfig's) from a (..., 3, H, W) picture: its
    RGB, then the codec planes (``hint_planes``, (..., C, H, W)), then the neighbours
    (``neighbours``, (..., 6n or with quality 8n, H, W); None or empty: the picture itself, of
    neutral quality)."""
    parts = [image]
    if cond_channels:
        if hint_planes is None or hint_planes.shape[-3] != cond_channels:
            raise ValueError(f"a codec-aware model needs {cond_channels} codec planes")
        planes = torch.from_numpy(hint_planes) if isinstance(hint_planes, np.ndarray) else hint_planes
        parts.append(planes.to(image.dtype).expand(*image.shape[:-3], *planes.shape[-3:]))
    if n:
        if neighbours is None or neighbours.shape[-3] == 0:
            lead = [1] * (image.dim() - 3)
            neighbours = image.repeat(*lead, 2 * n, 1, 1)
            if quality:
                neutral = torch.full_like(image[..., :1, :, :], NEUTRAL_QUALITY).repeat(*lead, 2 * n, 1, 1)
                neighbours = torch.cat([neighbours, neutral], dim=-3)
        elif neighbours.shape[-3] != 2 * n * (3 + quality):
            raise ValueError(f"a model with {n} neighbours on each side needs {2 * n * (3 + quality)} neighbour planes")
        parts.append(neighbours)
    return torch.cat(parts, dim=-3) if len(parts) > 1 else image


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, int, int]:
    """Pad bottom/right to a multiple (reflect, or replicate where the image is too small)."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, ph, pw


def forward(network: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, multiple: int, scale: int = 1) -> torch.Tensor:
    """``network`` (a generator, or anything that runs one) on a model input ``x`` of any size:
    padded to ``multiple``, run, cropped to (H * scale, W * scale), clamped to [0, 1] as float."""
    h, w = x.shape[-2:]
    y = network(pad_to_multiple(x, multiple)[0])
    return y[..., : h * scale, : w * scale].float().clamp(0, 1)
