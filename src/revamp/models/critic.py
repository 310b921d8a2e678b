"""Patch critic for the NoGAN stages (DeOldify's gan_critic): strided convs with spectral norm,
LeakyReLU and dropout; one logit per patch of the input.

With spectral norm the logits stay small (|logit| about 0.005 after critic pre-training on the
default model's outputs), so the sign of a logit says little: judge the critic by how often it
scores an original above its restoration (pair accuracy, logged by the critic stage).
``spectral_norm=False`` builds the same critic without it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


@dataclass(frozen=True)
class CriticConfig:
    width: int = 64
    blocks: int = 3
    dropout: float = 0.15
    spectral_norm: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


def _conv(cin: int, cout: int, k: int, stride: int, sn: bool, act: bool = True) -> nn.Sequential:
    conv = nn.Conv2d(cin, cout, k, stride, padding=(k - 1) // 2 if stride == 1 else 1)
    layers: list[nn.Module] = [spectral_norm(conv) if sn else conv]
    if act:
        layers.append(nn.LeakyReLU(0.2, inplace=True))
    return nn.Sequential(*layers)


class PatchCritic(nn.Module):
    def __init__(self, config: CriticConfig = CriticConfig()):
        super().__init__()
        self.config = config
        nf, sn = config.width, config.spectral_norm
        layers: list[nn.Module] = [_conv(3, nf, 4, 2, sn), nn.Dropout2d(config.dropout / 2)]
        for _ in range(config.blocks):
            layers += [_conv(nf, nf, 3, 1, sn), nn.Dropout2d(config.dropout), _conv(nf, nf * 2, 4, 2, sn)]
            nf *= 2
        last = nn.Conv2d(nf, 1, 3, 1, 1, bias=False)
        layers += [_conv(nf, nf, 3, 1, sn), spectral_norm(last) if sn else last]
        self.net = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> (N, 1, H/16, W/16) logits (real > 0)."""
        return self.net((x - self.mean) * 2)
