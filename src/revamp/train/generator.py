"""NoGAN stage 1: pre-train the generator with the configured loss (pixel and/or LPIPS),
on 64x64 patches first, then on larger crops of whole images."""
from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from revamp.models.files import VIDEO_RGB, read_metadata, save_model
from revamp.models.unet import UNetConfig, UNetGenerator, load_encoder_weights
from revamp.train.common import StageTrainer
from revamp.train.losses import WeightedLoss


def build_generator(cfg: dict) -> tuple[UNetGenerator, dict | None]:
    """A fresh generator, one that starts from a model file of the same architecture (``init``:
    fine-tuning), or one that takes what fits from a model of another architecture (``transfer``).
    Returns the model and, for a transfer, what it took (``Transfer.record``)."""
    if cfg.get("init"):
        from revamp.models.files import load_model

        model, _ = load_model(cfg["init"])
        wanted = UNetConfig(**dict(cfg["model"], spectral_norm=False))
        # The neighbours' gate (window, tolerance) is how the input is prepared, not a weight: a fine-tune may change it.
        if replace(model.config, neighbour_window=wanted.neighbour_window, neighbour_step_gate=wanted.neighbour_step_gate) != wanted:
            raise ValueError(f"init model {cfg['init']} has architecture {model.config.to_dict()}, the config asks for {cfg['model']}")
        model.config = wanted
        return model.train(), None
    model = UNetGenerator(UNetConfig(**cfg["model"]))
    if cfg.get("encoder_weights"):
        load_encoder_weights(model, cfg["encoder_weights"])
    if cfg.get("transfer"):
        return model, transfer_weights(model, cfg["transfer"]).record(cfg["transfer"])
    return model, None


def stem_planes(model: UNetGenerator) -> tuple[torch.nn.Conv2d, slice, list[slice]]:
    """The encoder's first conv, and which of its input channels are the frame's RGB and each
    neighbour's RGB (they follow the frame's and the codec planes; any quality planes come last)."""
    cfg = model.config
    stem = next(m for m in model.encoder.modules() if isinstance(m, torch.nn.Conv2d))
    rgb, first = cfg.in_channels, cfg.in_channels + cfg.cond_channels
    return stem, slice(0, rgb), [slice(first + k * rgb, first + (k + 1) * rgb) for k in range(2 * cfg.neighbours)]


def mix_neighbours_into_stem(model: UNetGenerator, share: float) -> None:
    """Move ``share`` of the encoder stem's weights on the frame's RGB onto each neighbour's RGB
    (W_neighbour += share W_frame, then W_frame *= 1 - 2 neighbours share). Where the aligned
    neighbours equal the frame (a still, a region the gate left out) the stem computes exactly what
    it did; elsewhere the encoder sees a temporal average of the frames. Neighbour weights that
    started at zero stay near it for thousands of steps (docs/models.md, `video-quality`), and such
    an average is a start training alone does not find."""
    stem, frame, neighbours = stem_planes(model)
    n = len(neighbours)
    if not n or not 0 <= share <= 1 / n:
        raise ValueError(f"share must be in [0, 1/{n}] for a model with {model.config.neighbours} neighbours on each side, "
                         f"not {share}")
    with torch.no_grad():
        weights = stem.weight[:, frame].clone()
        for planes in neighbours:
            stem.weight[:, planes] += share * weights
        stem.weight[:, frame] = (1 - n * share) * weights


def spread_neighbours_outward(model: UNetGenerator, inner: int, share: float) -> None:
    """Move ``share`` of the stem's weights on each side's nearest neighbour onto each neighbour
    beyond the ``inner`` nearest of that side (W_outer += share W_nearest, then W_nearest *= 1 -
    outer neighbours per side x share): a model widened from ``inner`` neighbours a side, whose
    new ones start at zero, then averages the farther frames in as well. Where the aligned
    neighbours equal each other (a still, a region the gates left out) it computes what it did."""
    stem, _, sides = stem_planes(model)
    n, outer = model.config.neighbours, model.config.neighbours - inner
    if not 1 <= inner < n or not 0 <= share <= 1 / outer:
        raise ValueError(f"need 1 <= inner < {n} neighbours a side and a share in [0, 1/(outer neighbours a side)], "
                         f"not inner {inner}, share {share}")
    with torch.no_grad():  # sides: offsets -n..-1, then 1..n
        for nearest, farther in ((sides[n - 1], sides[: n - inner]), (sides[n], sides[n + inner :])):
            weights = stem.weight[:, nearest].clone()
            for planes in farther:
                stem.weight[:, planes] += share * weights
            stem.weight[:, nearest] = (1 - outer * share) * weights


def input_plane_index(source: UNetConfig, target: UNetConfig) -> list[int] | None:
    """Where each of ``source``'s input planes sits among ``target``'s: the frame's channels, its
    codec planes, each neighbour's channels by its offset (-n..-1, 1..n), then each neighbour's
    quality plane; None where ``target`` does not hold all of them."""
    if (source.in_channels != target.in_channels or source.cond_channels > target.cond_channels
            or source.neighbours > target.neighbours or source.neighbour_quality > target.neighbour_quality):
        return None

    def layout(config: UNetConfig) -> list[tuple]:
        offsets = [*range(-config.neighbours, 0), *range(1, config.neighbours + 1)]
        return ([("frame", c) for c in range(config.in_channels)] + [("codec", c) for c in range(config.cond_channels)]
                + [(o, c) for o in offsets for c in range(config.in_channels)] + [("quality", o) for o in offsets] * config.neighbour_quality)

    where = {plane: k for k, plane in enumerate(layout(target))}
    return [where[plane] for plane in layout(source)]


class Transfer(NamedTuple):
    copied: int  # tensors of the new model taken from the source
    fresh: int  # tensors of the new model left at their initialisation
    source_left: int  # tensors of the source that found no place

    def record(self, path: str) -> dict:
        """The recipe's note of the transfer. ``whole``: every tensor of the source was taken, so the
        new model started out as its source and the source's training counts as its own."""
        return {"file": Path(path).name, "copied": self.copied, "fresh": self.fresh, "whole": self.source_left == 0}


def transfer_weights(model: UNetGenerator, path: str) -> Transfer:
    """Copy every tensor of the model file whose name and shape fit ``model``. A conv that gained
    input planes (codec planes, neighbours, their quality planes) keeps the old planes' weights,
    each where its plane sits in the new input (input_plane_index), and starts the new ones at
    zero, so the model starts out computing what the source computed. Into a model of
    another scale (a restorer's trunk for super-resolution) the output layer is not copied: it
    reads the fresh upscaling head, and left at zero it makes the new model start at exactly its
    bicubic base."""
    from revamp.models.files import load_model

    source_model = load_model(path)[0]
    source = source_model.state_dict()
    own = model.state_dict()
    planes = input_plane_index(source_model.config, model.config)
    taken = set()
    for name, value in own.items():
        src = source.get(name)
        if src is None or (name.startswith("to_rgb.") and source_model.config.scale != model.config.scale):
            continue
        if src.shape == value.shape:
            value.copy_(src)
        elif src.dim() == 4 and src.shape[0] == value.shape[0] and src.shape[2:] == value.shape[2:] and src.shape[1] < value.shape[1]:
            value.zero_()
            # The convs that read the input planes (the stem; the full-resolution stage, after its
            # features): each source plane goes where the same plane sits in the new input.
            features = src.shape[1] - source_model.config.input_planes
            if planes is not None and features >= 0 and value.shape[1] - model.config.input_planes == features:
                value[:, :features] = src[:, :features]
                value[:, [features + k for k in planes]] = src[:, features:]
            else:
                value[:, : src.shape[1]] = src
        else:
            continue
        taken.add(name)
    return Transfer(len(taken), len(own) - len(taken), len(set(source) - taken))


def source_recipe(path: str | Path | None) -> dict | None:
    """The recipe of the model file a stage starts from, kept in the recipe of what it makes, so a
    chain of runs stays on record. Read once, when the stage starts."""
    if not path:
        return None
    meta = read_metadata(path)
    return {"file": Path(path).name, "name": meta.get("name"), **json.loads(meta.get("recipe", "{}"))}


def recipe(trainer: GeneratorOutputs, stage: str, extra: dict | None = None) -> dict:
    c = trainer.cfg
    return {
        "stage": stage,
        "loss": c["loss"],
        "degradation": c["degradation"],
        "phases": [dict(p, steps=s) for p, s in zip(trainer.phases(), trainer.state["phase_steps"])],
        "steps": trainer.state["step"],
        "train_images": trainer.state["train_files"],
        "data": c["data"]["train"],
        "clips": c["data"].get("clips") or None,
        "seed": c["seed"],
        "optim": c["optim"],
        "init": Path(c["init"]).name if c.get("init") else None,
        "transfer": trainer.transfer,
        "device": torch.cuda.get_device_name() if trainer.device.type == "cuda" else "cpu",
        "processes": trainer.dist.world,
        "hours": round(trainer.state["seconds"] / 3600, 3),
        "best_val": trainer.state["best"],
        "video_rgb": VIDEO_RGB,
        **(extra or {}),
        "init_recipe": trainer.source_recipe,
    }


class GeneratorOutputs(StageTrainer):
    """Stages that train the generator (1 and 3): validate it, keep the best checkpoint, export."""

    model: UNetGenerator
    source_recipe: dict | None  # set by each stage from the file it starts from (source_recipe)
    transfer: dict | None = None  # what a ``transfer`` start took (Transfer.record)

    def better(self, result: dict, best: dict | None) -> bool:
        raise NotImplementedError

    def export(self, name: str) -> Path:
        raise NotImplementedError

    @property
    def shipped(self) -> torch.nn.Module:
        """The weights that are validated and exported: the EMA of the weights when the stage keeps one."""
        return getattr(self, "ema", None) or self.model

    def validate(self) -> None:
        if self.data.val is None:
            return
        result = self.data.val.evaluate(self.shipped, self.device, self.bf16)
        self.log.write("val.csv", self.state["step"], {k: round(v, 5) for k, v in result.items()})
        if self.state["best"] is None or self.better(result, self.state["best"]):
            self.state["best"] = {"step": self.state["step"], **result}
            self.export("best")
        if not self.quiet:
            gains = " ".join(f"{k[5:]}={v:+.2f}" for k, v in result.items() if k.startswith("gain_") and k != "gain_mean")
            tqdm.write(f"{self.stage} step {self.state['step']}: val PSNR gain {result['gain_mean']:+.3f} dB ({gains}), LPIPS {result['lpips']:.4f}")

    def finish(self) -> None:
        self.export("final")

    def stopped(self) -> None:
        # The weights at the stop as a model file: a run cut by a time limit on a lent machine can
        # bring these back when its checkpoint (with the optimiser state) is too big to.
        self.export("last")


class GeneratorTrainer(GeneratorOutputs):
    stage = "generator"

    def __init__(self, cfg: dict, run_dir: Path, device=None, quiet: bool = False, data=None):
        super().__init__(cfg, run_dir, device, quiet, data)
        model, self.transfer = build_generator(cfg)
        model = model.to(self.device)
        self.source_recipe = source_recipe(cfg.get("init") or cfg.get("transfer"))
        # A run that starts from trained weights validates them first, so its "best" is never
        # worse than where it started (a campaign's next leg warm-restarts from that best).
        self.validate_first = bool(cfg.get("init") or cfg.get("transfer"))
        if cfg["channels_last"]:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        o = cfg["optim"]
        self.opt = torch.optim.AdamW(model.parameters(), lr=o["lr"], betas=tuple(o["betas"]), weight_decay=o["weight_decay"])
        self.loss = WeightedLoss(cfg["loss"]).to(self.device)
        self.ddp = DistributedDataParallel(model) if self.dist.world > 1 else model
        # Only the training forward is compiled: validation, export and checkpoints use the module itself.
        self.train_forward = torch.compile(self.ddp) if cfg["compile"] else self.ddp
        self.modules = {"model": model}
        self.optimizers = {"model": self.opt}
        # optim.ema > 0: an exponential moving average of the weights (decay per step) is what is
        # validated and exported; it is in the checkpoint, so a resumed run continues it exactly.
        self.ema_decay = o["ema"]
        if self.ema_decay:
            self.ema = copy.deepcopy(model).requires_grad_(False)
            self.modules["ema"] = self.ema

    def phases(self) -> list[dict]:
        return self.cfg["phases"]

    def train_step(self, degraded, clean, lr_factor) -> dict[str, float]:
        self.set_lr(self.opt, self.cfg["optim"]["lr"], lr_factor)
        if self.cfg["optim"]["frozen_batchnorm"]:
            # Each step, since validation puts the model back in training mode.
            for module in self.model.modules():
                if isinstance(module, torch.nn.BatchNorm2d):
                    module.eval()
        if self.cfg["channels_last"]:
            degraded = degraded.contiguous(memory_format=torch.channels_last)
        with self.autocast():
            pred = self.train_forward(degraded)
        loss, parts = self.loss(pred, clean)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg["optim"]["grad_clip"]:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg["optim"]["grad_clip"])
        self.opt.step()
        if self.ema_decay:
            with torch.no_grad():
                torch._foreach_lerp_(list(self.ema.parameters()), list(self.model.parameters()), 1 - self.ema_decay)
                for kept, now in zip(self.ema.buffers(), self.model.buffers()):
                    kept.copy_(now)
        return {"loss": float(loss.detach()), **parts}

    def better(self, result: dict, best: dict) -> bool:
        """Best checkpoint (``select``): highest PSNR gain, or lowest LPIPS; ``auto``: LPIPS for perceptual losses;
        ``last``: the latest validated weights (for runs the validation set does not rank, such as
        video models: their panned stills moved against Vid4, docs/models.md)."""
        select = self.cfg["select"]
        if select == "last":
            return True
        if select == "lpips" or (select == "auto" and any(k.startswith("lpips") for k in self.cfg["loss"])):
            return result["lpips"] < best["lpips"]
        return result["gain_mean"] > best["gain_mean"]

    def export(self, name: str) -> Path:
        path = self.run_dir / f"{name}.safetensors"
        save_model(self.shipped, path, name=self.cfg["name"], task=self.cfg["task"], recipe=recipe(self, "generator-pretrain"))
        return path
