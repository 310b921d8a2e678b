"""Training losses, combined as a weighted sum named in the config (``loss: {l1: 1.0, ssim: 0.2}``)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from revamp.metrics.fidelity import BT601_Y


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    return torch.sqrt((pred - target) ** 2 + eps**2).mean()


def charbonnier_y(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Charbonnier on the BT.601 luma: video restoration is measured on Y (MFQE, STDF and
    BasicVSR++ restore Y alone), so a term on it weighs luma above the chroma the codec subsampled."""
    luma = pred.new_tensor([w / 255 for w in BT601_Y]).view(1, 3, 1, 1)  # as PSNR-Y measures it (rgb_to_y)
    return charbonnier((pred * luma).sum(1), (target * luma).sum(1))


def _gaussian_window(channels: int, device, dtype, size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    g = torch.exp(-((torch.arange(size, device=device, dtype=dtype) - size // 2) ** 2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim_map(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Differentiable SSIM (Gaussian 11x11, sigma 1.5) on [0, 1] images, valid region only."""
    c = pred.shape[1]
    win = _gaussian_window(c, pred.device, pred.dtype)
    blur = lambda x: F.conv2d(x, win, groups=c)  # noqa: E731
    mu_p, mu_t = blur(pred), blur(target)
    var_p = blur(pred * pred) - mu_p**2
    var_t = blur(target * target) - mu_t**2
    cov = blur(pred * target) - mu_p * mu_t
    c1, c2 = 0.01**2, 0.03**2
    return ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2))


class WeightedLoss(nn.Module):
    """Sum of named terms; returns the total and each term (for logging)."""

    TERMS = {
        "l1": lambda p, t: F.l1_loss(p, t),
        "mse": lambda p, t: F.mse_loss(p, t),
        "charbonnier": charbonnier,
        "charbonnier_y": charbonnier_y,
        "ssim": lambda p, t: 1 - ssim_map(p, t).mean(),
    }

    PERCEPTUAL = ("lpips", "lpips_vgg")  # LPIPS v0.1 with AlexNet (default) or VGG16 (the paper's)

    def __init__(self, weights: dict[str, float]):
        super().__init__()
        unknown = set(weights) - set(self.TERMS) - set(self.PERCEPTUAL)
        if unknown:
            raise ValueError(f"unknown loss term(s) {', '.join(sorted(unknown))}; known: {', '.join([*self.TERMS, *self.PERCEPTUAL])}")
        if not weights:
            raise ValueError("the loss needs at least one term")
        self.weights = {k: float(v) for k, v in weights.items()}
        self.perceptual = nn.ModuleDict()
        for name in self.PERCEPTUAL:
            if name in self.weights:
                from revamp.metrics.lpips import LPIPS

                self.perceptual[name] = LPIPS("vgg" if name == "lpips_vgg" else "alex")

    def _term(self, name: str, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if name in self.perceptual:
            return self.perceptual[name](pred, target).mean()
        return self.TERMS[name](pred, target)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        pred, target = pred.float(), target.float()
        parts = {name: self._term(name, pred, target) for name in self.weights}
        total = sum(self.weights[name] * value for name, value in parts.items())
        return total, {name: float(value.detach()) for name, value in parts.items()}
