"""Patch critic for the NoGAN stages (DeOldify's gan_critic): strided convs with spectral norm,
LeakyReLU and dropout; one logit per patch of the input."""
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

    def to_dict(self) -> dict:
        return asdict(self)


def _conv(cin: int, cout: int, k: int, stride: int, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [spectral_norm(nn.Conv2d(cin, cout, k, stride, padding=(k - 1) // 2 if stride == 1 else 1))]
    if act:
        layers.append(nn.LeakyReLU(0.2, inplace=True))
    return nn.Sequential(*layers)


class PatchCritic(nn.Module):
    def __init__(self, config: CriticConfig = CriticConfig()):
        super().__init__()
        self.config = config
        nf = config.width
        layers: list[nn.Module] = [_conv(3, nf, 4, 2), nn.Dropout2d(config.dropout / 2)]
        for _ in range(config.blocks):
            layers += [_conv(nf, nf, 3, 1), nn.Dropout2d(config.dropout), _conv(nf, nf * 2, 4, 2)]
            nf *= 2
        layers += [_conv(nf, nf, 3, 1), spectral_norm(nn.Conv2d(nf, 1, 3, 1, 1, bias=False))]
        self.net = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> (N, 1, H/16, W/16) logits (real > 0)."""
        return self.net((x - self.mean) * 2)
