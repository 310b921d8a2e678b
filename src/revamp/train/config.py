"""Training configs: YAML files in configs/, merged over these defaults."""
from __future__ import annotations

import copy
import re
from pathlib import Path

import yaml


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads 2e-4 as a float: PyYAML follows YAML 1.1, which wants a dot
    (2.0e-4) and would otherwise hand a learning rate over as the string '2e-4'."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_yaml(text: str):
    return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)


DEFAULTS: dict = {
    "name": "run",
    "task": "jpeg-artifact-removal",
    "seed": 0,
    "model": {"encoder": "mobilenetv3_large_100", "width": 32, "scale": 1, "self_attention": True, "spectral_norm": False},
    "encoder_weights": None,  # safetensors file with encoder weights (e.g. converted ImageNet ones)
    "init": None,  # a revamp model file to start the generator from (fine-tuning)
    "transfer": None,  # a revamp model file of another architecture: copy every tensor that fits
    # blind_prob: codec-aware models see this share of training samples without a quantiser hint.
    # clips: folders of real video frames, a share clip_prob of the samples, through degradation.video.
    "data": {"train": ["../shared/data/train"], "val_count": 12, "workers": 2, "blind_prob": 0.2, "clips": [], "clip_prob": 0.0},
    "degradation": {"jpeg": {"quality": [5, 95], "quality_power": 1.0, "subsampling": {"4:2:0": 0.8, "4:4:4": 0.2}, "double_prob": 0.1}},
    "loss": {"charbonnier": 1.0},
    "optim": {"lr": 3e-4, "min_lr": 1e-5, "betas": [0.9, 0.99], "weight_decay": 0.0, "warmup": 200, "grad_clip": 1.0},
    # Phase 1: 64x64 patches (codec blocks, mosquito noise); phase 2: larger crops of whole images.
    "phases": [
        {"name": "patches", "patch": 64, "batch": 32, "steps": 1000},
        {"name": "full", "patch": 256, "batch": 4, "steps": 250},
    ],
    # NoGAN stage 2: the critic learns originals vs the pre-trained generator's outputs.
    "critic": {"model": {"width": 64, "blocks": 3, "dropout": 0.15, "spectral_norm": True}, "lr": 2e-4, "warmup": 20,
               "phases": [{"name": "critic", "patch": 128, "batch": 16, "steps": 200}]},
    # NoGAN stage 3: short GAN phase; best checkpoint by validation LPIPS.
    "gan": {"lr": 2e-5, "critic_lr": 1e-4, "betas": [0.0, 0.9], "adv_weight": 0.02, "warmup": 20,
            "loss": {"lpips": 1.0, "l1": 1.0}, "phases": [{"name": "gan", "patch": 128, "batch": 8, "steps": 200}]},
    "bf16": "auto",
    "channels_last": True,
    "log_every": 10,
    "checkpoint_every": 200,
    "val_every": 500,
    "val_qualities": [10, 20, 30, 40],
    "val_video": [],  # [codec, quantiser(, x264/x265 preset)]: held-out images panned into clips through real codecs
    # The best checkpoint: "auto" (lowest LPIPS for perceptual losses, else highest PSNR gain), "psnr" or "lpips".
    "select": "auto",
}


def merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key not in ("loss", "degradation", "codecs"):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_config(path: str | Path | None, overrides: dict | None = None) -> dict:
    cfg = DEFAULTS
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config not found: {path}")
        loaded = load_yaml(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: a config must be a YAML mapping")
        unknown = set(loaded) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"{path}: unknown config key(s): {', '.join(sorted(unknown))}")
        cfg = merge(cfg, loaded)
    return merge(cfg, overrides or {})
