"""What every NoGAN stage shares: data, validation, the step loop, logs, checkpoints (devices and
processes: revamp.runtime).

A stage trains one or more *phases*; each phase draws samples index by index from a
PairDataset, so sample ``i`` of a phase is the same on every run, and ``--resume``
continues exactly. A phase sets ``steps`` or ``minutes``; with ``minutes`` the step count
is fixed once from the median step time of its first steps (robust to a pause), stored, and
shared by all ranks.

Under ``torchrun`` each rank takes every WORLD_SIZE-th sample of the global batch;
rank 0 alone logs, validates and writes checkpoints.
"""
from __future__ import annotations

import csv
import json
import math
import signal
import statistics
import threading
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from revamp.codec import BLIND, CodecHint, ijg_table, jpeg_step
from revamp.data.degrade import bicubic_up, build_degradation, build_video_degradation, make_input
from revamp.data.pairs import PairDataset, RangeSampler, list_clips, list_images, split_train_val, to_tensor
from revamp.imageio import read_dataset_image
from revamp.metrics import psnr
from revamp.models.contract import forward, model_input
from revamp.models.unet import UNetConfig
from revamp.runtime import init_distributed, pick_device, use_bf16
from revamp.train.checkpoint import has_checkpoint, load_checkpoint, save_checkpoint

RATE_PROBE_STEPS = (10, 40)  # steps [10, 40) after a (re)start measure a timed phase's speed


def lr_at(step_in_phase: int, phase_steps: int, lr: float, min_lr: float, warmup: int) -> float:
    """Linear warm-up, then cosine decay to min_lr, restarted for every phase."""
    if step_in_phase < warmup:
        return lr * (step_in_phase + 1) / warmup
    t = (step_in_phase - warmup) / max(phase_steps - warmup, 1)
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * min(t, 1.0)))


def validation_input(model: torch.nn.Module, degraded: np.ndarray, step: float | None, device: torch.device) -> torch.Tensor:
    """A compressed validation image as the model's padded input batch; a codec-aware model is told
    the quantiser step, as the file would tell it (None: blind); a multi-frame model gets the
    aligned neighbours the item carries after its RGB (a still: itself)."""
    planes = None
    if model.config.cond_channels:
        h, w = degraded.shape[:2]
        planes = (BLIND if step is None else CodecHint.constant(step, h, w, "validation")).planes(0, h, 0, w)
    image = to_tensor(degraded)
    config = model.config
    return model_input(image[:3], config.cond_channels, config.neighbours, planes, image[3:], config.neighbour_quality)[None].to(device)


VAL_VIDEO_CROP = 256  # the window of each held-out image panned into a validation clip


class ValidationSet:
    """Held-out images, JPEG-compressed at fixed qualities and, for each ``[codec, quantiser]`` (or
    ``[codec, quantiser, preset]``) of ``video``, panned into a clip through that codec (told the
    decoded frame's quantiser, as in use): PSNR gain over the input per item kind (``gain_q10``, ``gain_h264_37``,
    ``gain_h265_37_medium``, ...), their mean, and LPIPS."""

    def __init__(self, files: list[Path], qualities: list[int], scale: int, video: list | None = None, model: dict | None = None,
                 max_side: int = 512):
        from revamp.data.degrade import VideoDegradation, neighbour_settings

        self.scale = scale
        # (key, reference, compressed input, quantiser step): the same preparation as `revamp eval`.
        images = [read_dataset_image(f) for f in files]
        self.items = [(f"q{q}", *make_input(img[:max_side, :max_side], q, scale), jpeg_step(ijg_table(q))) for img in images for q in qualities]
        if video and scale != 1:
            raise ValueError("val_video is for artifact-removal models (scale 1)")
        for codec, q, *preset in video or []:
            degradation = VideoDegradation({codec: (q, q)}, presets={codec: preset}, **neighbour_settings(model))
            for i, img in enumerate(images):
                clean = np.ascontiguousarray(img[:VAL_VIDEO_CROP, :VAL_VIDEO_CROP])
                degraded, step = degradation.sample(clean, np.random.default_rng([17, i]))
                self.items.append(("_".join(map(str, [codec, q, *preset])), clean, degraded, step))

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, device: torch.device, bf16: bool) -> dict[str, float]:
        from revamp.metrics.lpips import get_lpips

        lpips_net = get_lpips("alex").to(device)
        was_training = model.training
        model.eval()
        gains: dict[str, list[float]] = {}
        lpips_values = []
        for key, clean, degraded, step in self.items:
            x = validation_input(model, degraded, step, device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                y = forward(model, x, model.size_multiple, self.scale)
            y = (y * 255).round() / 255
            out = (y[0] * 255).byte().permute(1, 2, 0).cpu().numpy()
            base = degraded[..., :3] if self.scale == 1 else bicubic_up(degraded, self.scale)
            gains.setdefault(key, []).append(psnr(out, clean) - psnr(base, clean))
            lpips_values.append(float(lpips_net(y, to_tensor(clean)[None].to(device))[0]))
        model.train(was_training)
        result = {f"gain_{key}": float(np.mean(v)) for key, v in gains.items()}
        result["gain_mean"] = float(np.mean(list(result.values())))
        result["lpips"] = float(np.mean(lpips_values))
        return result


class RunLog:
    """CSV files plus TensorBoard event files in the run folder (rank 0 only)."""

    def __init__(self, run_dir: Path, enabled: bool):
        self.run_dir, self.enabled = run_dir, enabled
        self._tb = None

    def write(self, filename: str, step: int, row: dict) -> None:
        if not self.enabled:
            return
        path = self.run_dir / filename
        new = not path.exists()
        with path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["step", *row])
            if new:
                writer.writeheader()
            writer.writerow({"step": step, **row})
        if self._tb is None:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.run_dir / "tensorboard"))
            except ImportError:  # tensorboard is optional; the CSV files are always written
                self._tb = False
        if self._tb:
            prefix = filename.removesuffix(".csv")
            for key, value in row.items():
                if isinstance(value, (int, float)):
                    self._tb.add_scalar(f"{prefix}/{key}", value, step)
            self._tb.flush()


class TrainingData:
    """Training images in memory, the held-out validation images, the degradation."""

    def __init__(self, cfg: dict):
        files = list_images(cfg["data"]["train"])
        train_files, val_files = split_train_val(files, cfg["data"]["val_count"])
        self.train_files, self.val_files = train_files, val_files
        self.images = [read_dataset_image(f) for f in train_files]
        self.scale = cfg["model"]["scale"]
        self.degradation = build_degradation(cfg["degradation"], self.scale, cfg["model"])
        # Real video clips (data.clips), a share data.clip_prob of the samples, through degradation.video.
        self.clips, self.clip_degradation = [], None
        if cfg["data"].get("clips"):
            if self.scale != 1 or "video" not in cfg["degradation"]:
                raise ValueError("data.clips needs an artifact-removal model (scale 1) with a degradation.video section")
            self.clips = [np.stack([read_dataset_image(f) for f in frames]) for frames in list_clips(cfg["data"]["clips"])]
            self.clip_degradation = build_video_degradation(cfg["degradation"]["video"], cfg["model"])
        self.val = (ValidationSet(val_files, cfg["val_qualities"], self.scale, cfg["val_video"], cfg["model"])
                    if val_files else None)
        self.cfg = cfg

    def pairs(self, patch: int, seed: int) -> PairDataset:
        """The training pairs of ``patch``-pixel crops, as the config's model takes them."""
        data, model = self.cfg["data"], UNetConfig(**self.cfg["model"])
        return PairDataset(self.images, patch, self.degradation, seed, self.scale,
                           condition=model.cond_channels > 0, blind_prob=data["blind_prob"],
                           clips=self.clips, clip_prob=data.get("clip_prob", 0.0), clip_degradation=self.clip_degradation,
                           neighbours=model.neighbours, neighbour_quality=model.neighbour_quality, gray_prob=data["gray_prob"])


class StageTrainer:
    """Base of the three NoGAN stages: subclasses define modules, optimizers and ``train_step``."""

    stage = "stage"

    def __init__(self, cfg: dict, run_dir: Path, device: torch.device | None = None, quiet: bool = False, data: TrainingData | None = None):
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.device = device or pick_device()
        self.dist = init_distributed(self.device)
        self.quiet = quiet or not self.dist.main
        torch.manual_seed(cfg["seed"])
        self.bf16 = use_bf16(cfg["bf16"], self.device)
        self.data = data or TrainingData(cfg)
        self.log = RunLog(self.run_dir, self.dist.main)
        self.state: dict = {"step": 0, "phase_steps": [], "best": None, "seconds": 0.0,
                            "train_files": len(self.data.train_files), "val_files": [f.name for f in self.data.val_files]}
        self.modules: dict[str, torch.nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}

    # --- to be defined by each stage -------------------------------------
    def phases(self) -> list[dict]:
        raise NotImplementedError

    def train_step(self, degraded: torch.Tensor, clean: torch.Tensor, lr_factor: float) -> dict[str, float]:
        raise NotImplementedError

    def schedule(self) -> tuple[int, float]:
        """(warm-up steps, final lr as a fraction of the peak) for every phase of the stage."""
        return self.cfg["optim"]["warmup"], self.cfg["optim"]["min_lr"] / self.cfg["optim"]["lr"]

    validate_first = False

    def validate(self) -> None:
        pass

    def finish(self) -> None:
        pass

    def stopped(self) -> None:
        """Called when a run stops before its end (Ctrl-C, a time limit), after the checkpoint."""

    # --- checkpoints ------------------------------------------------------
    def _plain(self) -> dict[str, torch.nn.Module]:
        return {k: getattr(m, "module", m) for k, m in self.modules.items()}

    def save(self) -> None:
        if self.dist.main:
            save_checkpoint(self.run_dir, "checkpoint", self._plain(), self.optimizers, self.state)
        self.dist.barrier()

    def resume(self) -> None:
        if not has_checkpoint(self.run_dir):
            raise FileNotFoundError(f"no checkpoint to resume in {self.run_dir}")
        self.state = load_checkpoint(self.run_dir, "checkpoint", self._plain(), self.optimizers)

    # --- the loop ---------------------------------------------------------
    def train(self, stop_at_step: int | None = None) -> bool:
        """Run (or continue) every phase; False if stopped early (Ctrl-C or ``stop_at_step``)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.dist.main:
            (self.run_dir / "config.json").write_text(json.dumps(self.cfg, indent=1))
        phases = self.phases()
        if not self.state["phase_steps"]:
            self.state["phase_steps"] = [p.get("steps") for p in phases]
        interrupted = threading.Event()
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGINT, lambda *_: interrupted.set())
        try:
            if self.validate_first and self.dist.main and self.state["step"] == 0:
                self.validate()  # the starting point is a candidate for "best" too
            start = 0
            for i, phase in enumerate(phases):
                if not self._run_phase(i, phase, start, stop_at_step, interrupted):
                    self.save()
                    if self.dist.main:
                        self.stopped()
                    if not self.quiet:
                        tqdm.write(f"stopped at step {self.state['step']}; checkpoint saved in {self.run_dir} (continue with --resume)")
                    return False
                start += self.state["phase_steps"][i]
            if self.dist.main and self.state["step"] % self.cfg["val_every"]:
                self.validate()  # the last step was not validated yet
            self.save()
            if self.dist.main:
                self.finish()
            self.dist.barrier()
            return True
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)

    def _loader(self, index: int, phase: dict, first: int, last: int) -> DataLoader:
        per_rank = phase["batch"] // self.dist.world
        if per_rank * self.dist.world != phase["batch"]:
            raise ValueError(f"batch {phase['batch']} does not split over {self.dist.world} processes")
        seed = self.cfg["seed"] * 1000 + index + {"generator": 0, "critic": 100, "gan": 200}.get(self.stage, 300)
        dataset = self.data.pairs(phase["patch"], seed)
        if dataset.skipped_clips and not self.quiet:
            tqdm.write(f"{self.stage} {phase['name']}: {dataset.skipped_clips} of {len(self.data.clips)} clips are shorter than "
                       f"the codec's window or smaller than a {phase['patch']}-px crop; training uses the rest")
        workers = self.cfg["data"]["workers"]
        sampler = RangeSampler(first * phase["batch"], last * phase["batch"], self.dist.rank, self.dist.world)
        return DataLoader(dataset, batch_size=per_rank, sampler=sampler, num_workers=workers, drop_last=True,
                          pin_memory=self.device.type == "cuda", prefetch_factor=4 if workers else None)

    def _run_phase(self, index: int, phase: dict, phase_start: int, stop_at_step, interrupted) -> bool:
        steps = self.state["phase_steps"][index]  # None until a timed phase has been probed
        local = self.state["step"] - phase_start
        if steps is not None and local >= steps:
            return True
        loader = self._loader(index, phase, local, steps if steps is not None else 10**8)
        bar = tqdm(total=steps, initial=local, desc=f"{self.stage}: {phase['name']} ({phase['patch']}px)", disable=self.quiet, dynamic_ncols=True)
        since_start, probe, t_last = 0, [], time.monotonic()
        warmup, min_ratio = self.schedule()
        for degraded, clean in loader:
            if steps is None and since_start == RATE_PROBE_STEPS[1]:
                # The median step, not the mean: a pause (SIGSTOP, a suspended laptop) inside the
                # probe would otherwise size the whole phase for a machine many times slower.
                rate = 1.0 / max(statistics.median(probe), 1e-6)
                steps = self.dist.from_main(max(int(rate * phase["minutes"] * 60), local + 1))
                self.state["phase_steps"][index] = steps
                bar.total = steps
                if not self.quiet:
                    tqdm.write(f"{self.stage} {phase['name']}: {rate:.2f} steps/s -> {steps} steps in {phase['minutes']} min")
            # The warm-up (longer than the probe) keeps the lr independent of the probed total.
            lr_factor = lr_at(local, steps or 10**6, 1.0, min_ratio, warmup)
            parts = self.train_step(degraded.to(self.device, non_blocking=True), clean.to(self.device, non_blocking=True), lr_factor)
            local += 1
            since_start += 1
            self.state["step"] += 1
            now = time.monotonic()
            elapsed, t_last = now - t_last, now
            if steps is None and since_start > RATE_PROBE_STEPS[0]:
                probe.append(elapsed)
            self.state["seconds"] += elapsed
            bar.update(1)
            step = self.state["step"]
            if step % self.cfg["log_every"] == 0:
                bar.set_postfix({k: f"{v:.4f}" for k, v in list(parts.items())[:3]} | {"lr_factor": f"{lr_factor:.2f}"})
                self.log.write("train.csv", step, {"phase": phase["name"], "lr_factor": round(lr_factor, 6), **{k: round(v, 6) for k, v in parts.items()}})
            if step % self.cfg["checkpoint_every"] == 0:
                self.save()
            if step % self.cfg["val_every"] == 0:
                if self.dist.main:
                    self.validate()
                self.dist.barrier()
            if steps is not None and local >= steps:
                break
            if self.dist.any(interrupted.is_set() or (stop_at_step is not None and step >= stop_at_step)):
                bar.close()
                return False
        bar.close()
        return True

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def set_lr(self, optimizer: torch.optim.Optimizer, base_lr: float, factor: float) -> None:
        for group in optimizer.param_groups:
            group["lr"] = base_lr * factor
