"""LPIPS v0.1 (Zhang et al. 2018) with AlexNet or VGG16 features, no torchvision needed.

AlexNet weights ship with revamp (revamp/weights/lpips_alex.safetensors; provenance in
docs/weights.md): torchvision's ImageNet backbone plus the LPIPS v0.1 linear heads. The VGG16
file (29 MB in fp16) is over the repo's size limit for one file and is not shipped: point
REVAMP_LPIPS_VGG at it (e.g. ../shared/weights/lpips_vgg.safetensors).
Inputs are RGB in [0, 1] (converted to [-1, 1] inside); lower is more similar.
Used both as a metric and as the perceptual training loss (the paper's choice).
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from revamp.models import registry

_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


def _backbone(net: str) -> tuple[nn.Sequential, list[int]]:
    layers: list[nn.Module] = []
    if net == "alex":
        layers = [nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2), nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(),
                  nn.MaxPool2d(3, 2), nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(), nn.Conv2d(384, 256, 3, padding=1),
                  nn.ReLU(), nn.Conv2d(256, 256, 3, padding=1), nn.ReLU()]
        return nn.Sequential(*layers), [1, 4, 7, 9, 11]
    if net == "vgg":
        c = 3
        for v in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU()]
                c = v
        return nn.Sequential(*layers), [3, 8, 15, 22, 29]
    raise ValueError(f"LPIPS network must be 'alex' or 'vgg', not {net!r}")


def weights_file(net: str) -> Path:
    if net != "vgg":
        return registry.weights_file(f"lpips_{net}.safetensors")
    env = os.environ.get("REVAMP_LPIPS_VGG")
    if not env or not Path(env).is_file():
        raise FileNotFoundError("LPIPS-VGG weights are not shipped: set REVAMP_LPIPS_VGG to lpips_vgg.safetensors "
                                "(e.g. ../shared/weights/lpips_vgg.safetensors)")
    return Path(env)


class LPIPS(nn.Module):
    def __init__(self, net: str = "alex"):
        super().__init__()
        self.features, self.taps = _backbone(net)
        state = load_file(str(weights_file(net)))
        self.features.load_state_dict({k[len("features."):]: v.float() for k, v in state.items() if k.startswith("features.")})
        for i in range(5):
            self.register_buffer(f"lin{i}", state[f"lin{i}.model.1.weight"].float())
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):  # always frozen, whatever the caller's mode
        return super().train(False)

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        out, h = [], ((x * 2 - 1) - self.shift) / self.scale
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in self.taps:
                out.append(h / (h.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))
        return out

    def _layer_distances(self, a: torch.Tensor, b: torch.Tensor):
        """Each tapped layer's weighted distance map, (N, 1, h, w) at that layer's resolution."""
        for i, (fa, fb) in enumerate(zip(self._taps(a), self._taps(b))):
            yield F.conv2d((fa - fb) ** 2, getattr(self, f"lin{i}"))

    def distance_map(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Per-pixel distance, shape (N, 1, H, W): each layer's map upsampled to the input size
        (the ``spatial=True`` of the reference implementation); its mean is about ``forward``'s."""
        return sum(F.interpolate(d, size=a.shape[-2:], mode="bilinear", align_corners=False) for d in self._layer_distances(a, b))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Per-image distance, shape (N,)."""
        return sum(d.mean((1, 2, 3)) for d in self._layer_distances(a, b))


@lru_cache(maxsize=2)
def get_lpips(net: str = "alex") -> LPIPS:
    return LPIPS(net)


def _tensor(x) -> torch.Tensor:
    import numpy as np

    x = np.asarray(x)
    if x.ndim == 2:
        x = np.repeat(x[..., None], 3, axis=2)
    return torch.from_numpy(x.astype(np.float32) / 255).permute(2, 0, 1)[None]


def lpips(restored, reference, net: str = "alex") -> float:
    """LPIPS between two uint8 HxWx3 (or HxW) arrays."""
    with torch.no_grad():
        return float(get_lpips(net)(_tensor(restored), _tensor(reference))[0])


def masked_lpips(restored, reference, mask, net: str = "alex") -> float:
    """The mean of LPIPS's per-pixel distance over ``mask`` (boolean HxW)."""
    with torch.no_grad():
        dist = get_lpips(net).distance_map(_tensor(restored), _tensor(reference))[0, 0]
    return float(dist[torch.from_numpy(mask)].mean()) if mask.any() else float("nan")
