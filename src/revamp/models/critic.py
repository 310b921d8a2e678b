"""Critics for the NoGAN stages, both judging (N, 3, H, W) pictures in [0, 1] (real > 0):

- ``patch``: DeOldify's gan_critic, strided convs with spectral norm, LeakyReLU and dropout; one
  logit per 16x16 patch. With spectral norm its logits stay small (|logit| about 0.005 after
  critic pre-training on the default model's outputs), so the sign of a logit says little: judge
  it by how often it scores an original above its restoration (pair accuracy, logged by the
  critic stage).
- ``unet``: Real-ESRGAN's U-Net discriminator with spectral norm; one logit per pixel, so it
  can point at a ringing edge rather than at a whole patch.

``spectral_norm=False`` builds either without it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

KINDS = ("patch", "unet")


@dataclass(frozen=True)
class CriticConfig:
    kind: str = "patch"
    width: int = 64
    blocks: int = 3  # downsamplings
    dropout: float = 0.15  # patch critic only
    spectral_norm: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


def build_critic(config: CriticConfig) -> nn.Module:
    if config.kind not in KINDS:
        raise ValueError(f"unknown critic kind {config.kind!r}; known: {', '.join(KINDS)}")
    return PatchCritic(config) if config.kind == "patch" else UNetCritic(config)


def _conv(cin: int, cout: int, k: int, stride: int, sn: bool, act: bool = True) -> nn.Sequential:
    conv = nn.Conv2d(cin, cout, k, stride, padding=(k - 1) // 2 if stride == 1 else 1)
    layers: list[nn.Module] = [spectral_norm(conv) if sn else conv]
    if act:
        layers.append(nn.LeakyReLU(0.2, inplace=True))
    return nn.Sequential(*layers)


class _Critic(nn.Module):
    def __init__(self, config: CriticConfig):
        super().__init__()
        self.config = config
        self.register_buffer("mean", torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1), persistent=False)

    def _scaled(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) * 2


class PatchCritic(_Critic):
    def __init__(self, config: CriticConfig = CriticConfig()):
        super().__init__(config)
        nf, sn = config.width, config.spectral_norm
        layers: list[nn.Module] = [_conv(3, nf, 4, 2, sn), nn.Dropout2d(config.dropout / 2)]
        for _ in range(config.blocks):
            layers += [_conv(nf, nf, 3, 1, sn), nn.Dropout2d(config.dropout), _conv(nf, nf * 2, 4, 2, sn)]
            nf *= 2
        last = nn.Conv2d(nf, 1, 3, 1, 1, bias=False)
        layers += [_conv(nf, nf, 3, 1, sn), spectral_norm(last) if sn else last]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, 1, H/16, W/16) logits (blocks=3)."""
        return self.net(self._scaled(x))


class UNetCritic(_Critic):
    """Real-ESRGAN's UNetDiscriminatorSN (Wang et al. 2021): an encoder of strided convs, a decoder
    that upsamples and adds the encoder's features back, a per-pixel head."""

    def __init__(self, config: CriticConfig = CriticConfig(kind="unet")):
        super().__init__(config)
        sn = spectral_norm if config.spectral_norm else (lambda m: m)
        ch = [config.width * 2 ** i for i in range(config.blocks + 1)]
        self.first = nn.Conv2d(3, ch[0], 3, 1, 1)
        self.down = nn.ModuleList(sn(nn.Conv2d(ch[i], ch[i + 1], 4, 2, 1, bias=False)) for i in range(config.blocks))
        self.up = nn.ModuleList(sn(nn.Conv2d(ch[i + 1], ch[i], 3, 1, 1, bias=False)) for i in reversed(range(config.blocks)))
        self.head = nn.Sequential(sn(nn.Conv2d(ch[0], ch[0], 3, 1, 1, bias=False)), nn.LeakyReLU(0.2, inplace=True),
                                  sn(nn.Conv2d(ch[0], ch[0], 3, 1, 1, bias=False)), nn.LeakyReLU(0.2, inplace=True),
                                  nn.Conv2d(ch[0], 1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, 1, H, W) logits."""
        h = F.leaky_relu(self.first(self._scaled(x)), 0.2)
        skips = [h]
        for conv in self.down:
            h = F.leaky_relu(conv(h), 0.2)
            skips.append(h)
        skips.pop()
        for conv in self.up:
            skip = skips.pop()
            h = F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            h = F.leaky_relu(conv(h), 0.2) + skip
        return self.head(h)
