"""Models shipped inside the package. One entry per model; files live in revamp/weights/.

The quality line of each entry is measured by the command given in README.md
(`revamp eval`), not estimated.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path


@dataclass(frozen=True)
class ShippedModel:
    name: str
    file: str
    task: str
    quality: str


# What `revamp video` restores with unless told otherwise: the single-frame model trained on video.
VIDEO_MODEL = "video"

SHIPPED = {
    m.name: m
    for m in [
        ShippedModel(
            name="default",
            file="default.safetensors",
            task="JPEG and video-codec artifact removal (any quality), light decoder, codec-aware: reads the quantiser",
            quality="LIVE1 colour q20, RGB PSNR / LPIPS: JPEG 28.06 / 0.180 -> 28.92 / 0.108",
        ),
        ShippedModel(
            name="video",
            file="video.safetensors",
            task="`revamp video`'s default: `default` trained further on real-codec video (natural clips, I/P/B frames), codec-aware",
            quality="Vid4 QP37 (x264 veryfast / x265 ultrafast), PSNR-Y gain with the stabiliser: H.264 +0.05 -> +0.10 dB, H.265 +0.23 -> +0.27 (default -> video)",
        ),
        ShippedModel(
            name="full",
            file="full.safetensors",
            task="JPEG and video-codec artifact removal, full decoder: +0.2 dB PSNR over default, 1.5x slower, blind",
            quality="LIVE1 colour q20, RGB PSNR / LPIPS: JPEG 28.06 / 0.180 -> 29.14 / 0.125",
        ),
        ShippedModel(
            name="full-psnr",
            file="full-psnr.safetensors",
            task="JPEG artifact removal, full decoder, pixel loss only: highest PSNR, softer",
            quality="LIVE1 colour q20, RGB PSNR / LPIPS: JPEG 28.06 / 0.180 -> 29.29 / 0.187",
        ),
        ShippedModel(
            name="sr2x",
            file="sr2x.safetensors",
            task="super-resolution x2 plus artifact removal (first, short CPU run)",
            quality="Set14 x2 of JPEG q40, Y PSNR / LPIPS: bicubic 27.91 / 0.344 -> 28.20 / 0.208",
        ),
        ShippedModel(
            name="sr4x",
            file="sr4x.safetensors",
            task="super-resolution x4 plus artifact removal (CPU run, generator stage)",
            quality="Set14 x4 of JPEG q40, Y PSNR / LPIPS: bicubic 24.59 / 0.626 -> 24.71 / 0.370",
        ),
        ShippedModel(
            name="ablation-mse",
            file="ablation-mse.safetensors",
            task="Table I ablation: MSE loss (generator stage, the LPIPS ablation's steps)",
            quality="LIVE1 colour q20: RGB PSNR 28.06 JPEG -> 28.95 dB, LPIPS 0.1799 -> 0.1927 (a pixel loss blurs)",
        ),
        ShippedModel(
            name="ablation-ssim",
            file="ablation-ssim.safetensors",
            task="Table I ablation: SSIM loss (generator stage, the LPIPS ablation's steps)",
            quality="LIVE1 colour q20: SSIM 0.8256 JPEG -> 0.8520, RGB PSNR 28.06 -> 28.54 dB, LPIPS 0.1799 -> 0.1968",
        ),
        ShippedModel(
            name="ablation-lpips-pregan",
            file="ablation-lpips-pregan.safetensors",
            task="Table I ablation: LPIPS loss, before the GAN phase",
            quality="LIVE1 colour q20: LPIPS 0.1799 JPEG -> 0.1131, RGB PSNR 28.06 -> 27.79 dB",
        ),
        ShippedModel(
            name="ablation-lpips-postgan",
            file="ablation-lpips-postgan.safetensors",
            task="Table I ablation: LPIPS loss, after the GAN phase",
            quality="LIVE1 colour q20: LPIPS 0.1799 JPEG -> 0.1125, RGB PSNR 28.06 -> 27.92 dB",
        ),
        ShippedModel(
            name="ablation-small-postgan",
            file="ablation-small-postgan.safetensors",
            task="Table I ablation: MobileNetV3-Small encoder, LPIPS loss, after the GAN phase",
            quality="LIVE1 colour q20: LPIPS 0.1799 JPEG -> 0.1149, RGB PSNR 28.06 -> 28.02 dB",
        ),
    ]
}


def weights_dir() -> Path:
    return Path(str(resources.files("revamp") / "weights"))


def resolve_model(name_or_path: str) -> Path:
    """A shipped model's name or a path to a .safetensors file -> the file's path."""
    if name_or_path in SHIPPED:
        return weights_dir() / SHIPPED[name_or_path].file
    path = Path(name_or_path)
    if path.suffix == ".safetensors" or path.exists():
        return path
    raise ValueError(f"unknown model {name_or_path!r}: use one of {', '.join(SHIPPED)} or a path to a .safetensors file")
