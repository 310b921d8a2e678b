"""Model files: safetensors weights plus JSON metadata that describes how to rebuild the network.

Nothing here unpickles: weights are plain tensors, everything else is JSON text.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from revamp import __version__
from revamp.defaults import H265_HINT_SCALE, STABILIZE, VIDEO_HINT_SCALE
from revamp.models.unet import UNetConfig, UNetGenerator, fold_spectral_norm

FORMAT = "revamp-model/1"
ARCHITECTURE = "unet-dynamic"
# How training converts decoded video frames to RGB, recorded in each recipe (exact_video_rgb).
VIDEO_RGB = "exact"


class ModelFileError(ValueError):
    """A model file that is missing, unreadable or does not describe a revamp generator."""


def save_model(model: UNetGenerator, path: str | Path, *, name: str, task: str, recipe: dict, half: bool = True) -> None:
    """Write an inference model file (spectral norm folded, fp16 by default), atomically."""
    import copy

    model = copy.deepcopy(model).cpu().float()
    fold_spectral_norm(model)
    config = dict(model.config.to_dict(), spectral_norm=False)
    state = {k: (v.half() if half and v.is_floating_point() else v).contiguous() for k, v in model.state_dict().items()}
    meta = {
        "format": FORMAT,
        "architecture": ARCHITECTURE,
        "config": json.dumps(config),
        "name": name,
        "task": task,
        "recipe": json.dumps(recipe),
        "revamp_version": __version__,
        "dtype": "float16" if half else "float32",
    }
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(state, str(tmp), metadata=meta)
    tmp.replace(path)


def read_metadata(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found")
    if path.suffix != ".safetensors":
        raise ModelFileError(f"{path}: only .safetensors model files are loaded (pickled .pth/.pt files are refused)")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # safetensors raises several types for a damaged header
        raise ModelFileError(f"{path}: not a readable safetensors file ({exc})") from None
    if meta.get("format") != FORMAT or meta.get("architecture") != ARCHITECTURE:
        raise ModelFileError(f"{path}: not a revamp model file (metadata format={meta.get('format')!r}, architecture={meta.get('architecture')!r})")
    return meta


def training_runs(recipe: dict) -> list[dict]:
    """The recipes of the runs that made a model, newest first.

    A run that went on from another file (``init``; a GAN phase names its generator there) keeps
    that file's recipe as ``init_recipe``. So does a ``transfer`` run; the chain goes on through it
    only where it took every tensor of its source (``whole``: the new model started out computing
    its source), and stops where it took only the tensors that fit.
    """
    runs = [recipe]
    while isinstance(runs[-1].get("init_recipe"), dict) and (runs[-1].get("init") or _whole_transfer(runs[-1])):
        runs.append(runs[-1]["init_recipe"])
    return runs


def blind_video_codecs(recipe: dict) -> frozenset[str]:
    """The video codecs (h264, h265, mpeg2, mpeg4) whose quantisers are withheld from the model: those
    its last training run showed it blind (``degradation.video.blind_codecs``) less any the file was
    shipped to be told (``told_codecs``, measured when it was shipped; the training record stays)."""
    blind = ((recipe.get("degradation") or {}).get("video") or {}).get("blind_codecs") or ()
    return frozenset(blind) - frozenset(recipe.get("told_codecs") or ())


def _is_number(value) -> bool:
    # JSON's true and false are ints to Python: a recipe's `true` is not a mix of 1.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def stabiliser_mix(recipe: dict) -> float:
    """The video stabiliser's mix for the model: the one it was shipped with (``stabilize``, chosen
    on the training clips when it was shipped: a model that already blends its neighbouring frames
    may want less), else STABILIZE."""
    mix = recipe.get("stabilize")
    if mix is None:
        return STABILIZE
    if not _is_number(mix) or not 0 <= mix < 1:
        raise ModelFileError(f"the model's stabiliser mix must be a number in [0, 1), not {mix!r}")
    return float(mix)


def _hint_scale(recipe: dict, key: str, default: float, what: str) -> float:
    scale = recipe.get(key)
    if scale is None:
        return default
    if not _is_number(scale) or not 0 < scale <= 2:
        raise ModelFileError(f"the model's {what} hint scale must be a number in (0, 2], not {scale!r}")
    return float(scale)


def hint_scales(recipe: dict) -> dict[str, float]:
    """The share of a video frame's quantiser steps the model is told, by codec: H.264's
    macroblock steps and H.265's slice-QP step as the model was shipped with them
    (``h264_hint_scale``, ``h265_hint_scale``: chosen on the training clips), else
    VIDEO_HINT_SCALE and H265_HINT_SCALE; MPEG-2's and MPEG-4's always VIDEO_HINT_SCALE."""
    return {
        "h264": _hint_scale(recipe, "h264_hint_scale", VIDEO_HINT_SCALE, "H.264"),
        "h265": _hint_scale(recipe, "h265_hint_scale", H265_HINT_SCALE, "H.265"),
    }


def exact_video_rgb(recipe: dict) -> bool:
    """Whether the model learnt from decoded video frames converted to RGB exactly
    (revamp.video.io.yuv_to_rgb: every run that records ``video_rgb: exact``). A model trained on
    video frames before that saw them through FFmpeg's fast conversion, 1-1.5 levels darker, learnt
    to brighten them back and is given them that way (revamp.video.io.frame_to_rgb); one that
    never saw a video frame is given the exact ones."""
    if "video_rgb" in recipe:
        return recipe["video_rgb"] == VIDEO_RGB
    return not (((recipe.get("degradation") or {}).get("video") or {}).get("prob") or recipe.get("clips"))


def _whole_transfer(run: dict) -> bool:
    transfer = run.get("transfer")
    return isinstance(transfer, dict) and transfer.get("whole") is True


def training_compute(recipe: dict) -> dict:
    """What the runs that made a model spent (``training_runs``; the source of a partial ``transfer``
    is not counted): CPU hours, GPU minutes, steps and training samples seen (steps x batch)."""
    total = {"cpu_hours": 0.0, "gpu_minutes": 0.0, "steps": 0, "samples": 0}
    for run in training_runs(recipe):
        hours = float(run.get("hours") or 0)
        if run.get("device", "cpu") == "cpu":
            total["cpu_hours"] += hours
        else:
            total["gpu_minutes"] += 60 * hours
        left = int(run.get("steps") or 0)  # the steps the file was written at (a run cut short did fewer than planned)
        total["steps"] += left
        for phase in run.get("phases") or []:
            done = min(int(phase.get("steps") or 0), left)
            total["samples"] += done * int(phase.get("batch") or 0)
            left -= done
    total["cpu_hours"], total["gpu_minutes"] = round(total["cpu_hours"], 2), round(total["gpu_minutes"], 1)
    return total


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[UNetGenerator, dict]:
    """Rebuild the generator from the file's metadata and load its weights (strictly)."""
    meta = read_metadata(path)
    try:
        config = UNetConfig(**json.loads(meta["config"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: bad architecture config in metadata ({exc})") from None
    model = UNetGenerator(config)
    state = {}
    with safe_open(str(path), framework="pt") as f:
        for key in f.keys():
            state[key] = f.get_tensor(key)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        detail = "; ".join(
            f"{label}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
            if keys
        )
        raise ModelFileError(f"{path}: weights do not match the architecture in its metadata ({config.encoder}, width {config.width}, x{config.scale}): {detail}")
    model.load_state_dict({k: v.float() for k, v in state.items()})
    meta = dict(meta, config=json.loads(meta["config"]), recipe=json.loads(meta.get("recipe", "{}")))
    return model.to(device).eval(), meta


CRITIC_ARCHITECTURE = "patch-critic"


def save_critic(critic, path: str | Path) -> None:
    """The critic keeps any spectral-norm parametrizations: it is only ever trained further."""
    state = {k: v.detach().cpu().contiguous() for k, v in critic.state_dict().items()}
    meta = {"format": FORMAT, "architecture": CRITIC_ARCHITECTURE, "config": json.dumps(critic.config.to_dict()), "revamp_version": __version__}
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(state, str(tmp), metadata=meta)
    tmp.replace(path)


def load_critic(path: str | Path):
    from revamp.models.critic import CriticConfig, build_critic

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: critic file not found")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("architecture") != CRITIC_ARCHITECTURE:
            raise ModelFileError(f"{path}: not a revamp critic file")
        state = {k: f.get_tensor(k) for k in f.keys()}
    critic = build_critic(CriticConfig(**json.loads(meta["config"])))
    critic.load_state_dict(state)
    return critic
