"""Training configs: YAML files in configs/, merged over these defaults and checked against SCHEMA
before any work starts (unknown keys at any depth, types, ranges, duplicate YAML keys)."""
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


def _mapping_without_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    keys = [loader.construct_object(k, deep=deep) for k, _ in node.value]
    for key in keys:
        if keys.count(key) > 1:
            raise ConfigError(f"duplicate key {key!r} (line {node.start_mark.line + 1})")
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


class ConfigError(ValueError):
    """A config that cannot train: the message names the key."""


def load_yaml(text: str):
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        raise ConfigError(" ".join(str(exc).split())) from None


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
    # gray_prob: this share of the still crops is made gray (BT.601 luma) before degradation.
    "data": {"train": ["../shared/data/train"], "val_count": 12, "workers": 2, "blind_prob": 0.2, "clips": [], "clip_prob": 0.0,
             "gray_prob": 0.0},
    # A config's degradation section replaces this one whole; keys its jpeg part leaves out take
    # JpegDegradation's defaults, as these do.
    "degradation": {"jpeg": {}},
    "loss": {"charbonnier": 1.0},
    # ema: decay of an exponential moving average of the generator's weights, validated and
    # exported instead of the raw weights (0: none). frozen_batchnorm: the BatchNorms normalise with
    # their running statistics and keep them (as at inference) instead of following each batch.
    "optim": {"lr": 3e-4, "min_lr": 1e-5, "betas": [0.9, 0.99], "weight_decay": 0.0, "warmup": 200, "grad_clip": 1.0, "ema": 0.0,
              "frozen_batchnorm": False},
    # Phase 1: 64x64 patches (codec blocks, mosquito noise); phase 2: larger crops of whole images.
    "phases": [
        {"name": "patches", "patch": 64, "batch": 32, "steps": 1000},
        {"name": "full", "patch": 256, "batch": 4, "steps": 250},
    ],
    # NoGAN stage 2: the critic learns originals vs the pre-trained generator's outputs.
    # kind: patch (DeOldify) or unet (Real-ESRGAN); loss: bce, hinge or relativistic (both stages);
    # r1: weight of the R1 gradient penalty at the originals (0: none).
    "critic": {"model": {"kind": "patch", "width": 64, "blocks": 3, "dropout": 0.15, "spectral_norm": True}, "loss": "bce", "r1": 0.0,
               "lr": 2e-4, "warmup": 20, "phases": [{"name": "critic", "patch": 128, "batch": 16, "steps": 200}]},
    # NoGAN stage 3: short GAN phase; best checkpoint by validation LPIPS among those within
    # max_psnr_loss dB (mean PSNR gain) of the starting generator. adv_grad_ratio > 0 replaces the
    # constant adv_weight by one set each step from gradient norms (revamp.train.nogan).
    "gan": {"lr": 2e-5, "critic_lr": 1e-4, "betas": [0.0, 0.9], "adv_weight": 0.02, "adv_grad_ratio": 0.0, "max_psnr_loss": 0.3,
            "warmup": 20, "loss": {"lpips": 1.0, "l1": 1.0}, "phases": [{"name": "gan", "patch": 128, "batch": 8, "steps": 200}]},
    "bf16": "auto",
    "channels_last": True,
    # torch.compile the generator's training forward (and so its backward) in the generator stage
    # (`revamp train generator`, campaigns; the critic and GAN stages ignore it): 1.06-1.27x the
    # steps per second on the 2-core CPU in bf16 (docs/models.md), for up to two minutes of compiling.
    "compile": False,
    "log_every": 10,
    "checkpoint_every": 200,
    "val_every": 500,
    "val_qualities": [10, 20, 30, 40],
    "val_video": [],  # [codec, quantiser(, x264/x265 preset)]: held-out images panned into clips through real codecs
    # The best checkpoint: "auto" (lowest LPIPS for perceptual losses, else highest PSNR gain), "psnr", "lpips"
    # or "last" (the latest validated weights).
    "select": "auto",
}


# Given whole, these replace what they override (a config's loss is its loss, not the defaults'
# terms plus its own); other mappings merge key by key.
REPLACED_WHOLE = ("loss", "degradation", "codecs")


def merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key not in REPLACED_WHOLE:
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_overrides(cfg: dict, overrides: dict) -> dict:
    """Command-line overrides, keyed by dotted path: ``loss.lpips`` changes that one term and
    keeps the others; ``loss`` given whole replaces the loss."""
    out = copy.deepcopy(cfg)
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = out
        for i, key in enumerate(parents):
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{'.'.join(parents[: i + 1])}: not a mapping, cannot set {dotted}")
        node[leaf] = merge(node, {leaf: value})[leaf]  # merge's rules: a mapping merges unless REPLACED_WHOLE
    return out


def load_config(path: str | Path | None, overrides: dict | None = None) -> dict:
    """DEFAULTS, then the config file, then ``overrides`` (dotted paths, see apply_overrides)."""
    cfg = DEFAULTS
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config not found: {path}")
        loaded = load_yaml(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: a config must be a YAML mapping")
        try:
            check(loaded, SCHEMA)  # the file alone first, so an error names the file
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        cfg = merge(cfg, loaded)
    cfg = apply_overrides(cfg, overrides or {})
    check(cfg, SCHEMA)
    return cfg


# --- the schema: what each key may hold ------------------------------------------------------
# A dict node lists the keys allowed there; a leaf is a check(value) -> error or None.

def _number(kind=float, low=None, high=None, above=None):
    def check_(v):
        ok = (isinstance(v, int) or (isinstance(v, float) and v.is_integer()) if kind is int else isinstance(v, (int, float))) and not isinstance(v, bool)
        if not ok:
            return f"expected {'an integer' if kind is int else 'a number'}, got {v!r}"
        if (low is not None and v < low) or (high is not None and v > high) or (above is not None and v <= above):
            bounds = [f">= {low}" if low is not None else "", f"> {above}" if above is not None else "", f"<= {high}" if high is not None else ""]
            return f"must be {' and '.join(b for b in bounds if b)}, got {v!r}"
        return None
    check_.integer = kind is int  # 1E2 (a float to YAML) is read as 100
    return check_


def _one_of(*choices):
    return lambda v: None if any(v == c and type(v) is type(c) for c in choices) else f"must be one of {', '.join(map(repr, choices))}, got {v!r}"


def _text(v):
    return None if isinstance(v, str) else f"expected text, got {v!r}"


def _optional(check_):
    return lambda v: None if v is None else check_(v)


def _list(item, length=None):
    def check_(v):
        if not isinstance(v, list) or (length is not None and len(v) != length):
            return f"expected a list{f' of {length}' if length else ''}, got {v!r}"
        return next((f"item {i}: {e}" for i, x in enumerate(v) if (e := item(x))), None)
    return check_


def _paths(v):
    return _text(v) if isinstance(v, str) else _list(_text)(v)


def _keys_in(known, value):
    """A mapping whose keys come from ``known`` and whose values pass ``value``."""
    def check_(v):
        if not isinstance(v, dict):
            return f"expected a mapping, got {v!r}"
        unknown = sorted(set(map(str, v)) - set(known))
        if unknown:
            return f"unknown key {unknown[0]!r} (known: {', '.join(known)})"
        return next((f"{k}: {e}" for k, x in v.items() if (e := value(x))), None)
    return check_


def _phases(v):
    if not isinstance(v, list) or not v:
        return f"expected a list of phases, got {v!r}"
    for i, phase in enumerate(v):
        if not isinstance(phase, dict):
            return f"phase {i}: expected a mapping, got {phase!r}"
        try:
            check(phase, PHASE, f"phase {i}")
        except ConfigError as exc:
            return str(exc)
        missing = [k for k in ("name", "patch", "batch") if k not in phase]
        if missing or ("steps" in phase) == ("minutes" in phase):
            return f"phase {i}: needs name, patch, batch and one of steps or minutes"
    return None


def _loss_weights(v):
    """A loss section: known term names (revamp.train.losses), non-negative weights."""
    from revamp.train.losses import WeightedLoss

    return _keys_in([*WeightedLoss.TERMS, *WeightedLoss.PERCEPTUAL], _number(low=0))(v)


_PROB, _POSITIVE, _COUNT = _number(low=0, high=1), _number(above=0), _number(int, low=1)
PHASE = {"name": _text, "patch": _number(int, low=8), "batch": _COUNT, "steps": _COUNT, "minutes": _POSITIVE}
_CODECS = ("h264", "h265", "mpeg2", "mpeg4")
SCHEMA: dict = {
    "name": _text, "task": _text, "seed": _number(int, low=0),
    "model": {"encoder": _text, "width": _number(int, 8, 512), "scale": _one_of(1, 2, 4), "self_attention": _one_of(True, False),
              "spectral_norm": _one_of(True, False), "in_channels": _number(int, 1, 4), "decoder": _one_of("full", "light"),
              "cond_channels": _number(int, 0, 8), "neighbours": _number(int, 0, 4),
              "head_blocks": _number(int, 0, 4), "neighbour_quality": _one_of(True, False),
              "neighbour_window": _number(int, 1, 15), "neighbour_step_gate": _one_of(True, False)},
    "encoder_weights": _optional(_text), "init": _optional(_text), "transfer": _optional(_text),
    "data": {"train": _paths, "val_count": _number(int, low=0), "workers": _number(int, low=0), "blind_prob": _PROB,
             "clips": _paths, "clip_prob": _PROB, "gray_prob": _PROB},
    "degradation": {
        "jpeg": {"quality": _list(_number(int, 1, 100), 2), "quality_power": _POSITIVE,
                 "subsampling": _keys_in(["4:4:4", "4:2:2", "4:2:0"], _PROB), "double_prob": _PROB},
        "video": {"prob": _PROB, "codecs": _keys_in(_CODECS, _list(_number(int, 0, 51), 2)), "frames": _COUNT,
                  "max_motion": _number(int, low=0), "motion": _one_of("pan", "affine"), "blind_codecs": _list(_one_of(*_CODECS)), "presets": _keys_in(_CODECS, _list(_text)),
                  "weights": _keys_in(_CODECS, _number(low=0))},
        "downscale": {"methods": _list(_one_of("bicubic", "area")), "blur_prob": _PROB},
    },
    "loss": _loss_weights,
    "optim": {"lr": _POSITIVE, "min_lr": _number(low=0), "betas": _list(_number(low=0, high=1), 2), "weight_decay": _number(low=0),
              "warmup": _number(int, low=0), "grad_clip": _number(low=0), "ema": _number(low=0, high=0.99999),
              "frozen_batchnorm": _one_of(True, False)},
    "phases": _phases,
    "critic": {"model": {"kind": _one_of("patch", "unet"), "width": _number(int, 8, 512), "blocks": _number(int, 1, 8), "dropout": _PROB,
                         "spectral_norm": _one_of(True, False)},
               "loss": _one_of("bce", "hinge", "relativistic"), "r1": _number(low=0), "lr": _POSITIVE, "warmup": _number(int, low=0), "phases": _phases},
    "gan": {"lr": _POSITIVE, "critic_lr": _POSITIVE, "betas": _list(_number(low=0, high=1), 2), "adv_weight": _number(low=0),
            "adv_grad_ratio": _number(low=0), "max_psnr_loss": _number(low=0), "warmup": _number(int, low=0), "loss": _loss_weights, "phases": _phases},
    "bf16": _one_of("auto", True, False), "channels_last": _one_of(True, False), "compile": _one_of(True, False),
    "log_every": _COUNT, "checkpoint_every": _COUNT, "val_every": _COUNT,
    "val_qualities": _list(_number(int, 1, 100)),
    "val_video": _list(lambda v: None if isinstance(v, list) and 2 <= len(v) <= 3 and v[0] in _CODECS else f"expected [codec, quantiser(, preset)], got {v!r}"),
    "select": _one_of("auto", "psnr", "lpips", "last"),
}


def check(cfg: dict, schema: dict, where: str = "") -> None:
    """Raise ConfigError naming the first key of ``cfg`` that ``schema`` does not allow or whose value it rejects."""
    for key, value in cfg.items():
        name = f"{where}.{key}" if where else str(key)
        if key not in schema:
            raise ConfigError(f"unknown config key {name!r}" + (f" (known here: {', '.join(schema)})" if where else ""))
        rule = schema[key]
        if isinstance(rule, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{name}: expected a mapping, got {value!r}")
            check(value, rule, name)
        elif (error := rule(value)) is not None:
            raise ConfigError(f"{name}: {error}")
        elif getattr(rule, "integer", False):
            cfg[key] = int(value)
