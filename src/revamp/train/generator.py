"""Generator pre-training (NoGAN stage 1): pixel/perceptual loss on degraded pairs.

Phases run in order (64x64 patches, then larger crops). A phase sets either
``steps`` or ``minutes``; with ``minutes`` the step count is fixed once from the
measured speed of its first steps and stored, so resuming stays exact.
"""
from __future__ import annotations

import csv
import json
import math
import os
import signal
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from revamp.data.degrade import build_degradation, jpeg
from revamp.data.pairs import PairDataset, RangeSampler, list_images, load_rgb, split_train_val, to_tensor
from revamp.losses import WeightedLoss
from revamp.metrics import psnr
from revamp.models.files import save_model
from revamp.models.unet import UNetConfig, UNetGenerator, load_encoder_weights
from revamp.tiling import pad_to_multiple
from revamp.train.checkpoint import has_checkpoint, load_checkpoint, save_checkpoint

RATE_PROBE_STEPS = (10, 40)  # steps [10, 40) of a timed phase measure its speed


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def use_bf16(setting, device: torch.device) -> bool:
    if setting in (True, False):
        return setting
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    # On CPU bf16 pays off only with AMX/AVX512-BF16 units.
    return "AMX" in torch.backends.cpu.get_cpu_capability() or "AVX512_BF16" in torch.backends.cpu.get_cpu_capability()


def lr_at(step_in_phase: int, phase_steps: int, optim_cfg: dict) -> float:
    """Linear warm-up, then cosine decay to min_lr, restarted for every phase."""
    lr, min_lr, warmup = optim_cfg["lr"], optim_cfg["min_lr"], optim_cfg["warmup"]
    if step_in_phase < warmup:
        return lr * (step_in_phase + 1) / warmup
    t = (step_in_phase - warmup) / max(phase_steps - warmup, 1)
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * min(t, 1.0)))


class ValidationSet:
    """Held-out images, JPEG-compressed at fixed qualities; PSNR gain of the model over the JPEG."""

    def __init__(self, files: list[Path], qualities: list[int], scale: int, max_side: int = 512):
        self.items = []
        for f in files:
            clean = load_rgb(f)[:max_side, :max_side]
            if scale > 1:
                from revamp.data.degrade import downscale

                h, w = clean.shape[0] // scale * scale, clean.shape[1] // scale * scale
                clean = clean[:h, :w]
                small = downscale(clean, scale)
            else:
                small = clean
            for q in qualities:
                self.items.append((q, clean, jpeg(small, q)))
        self.scale = scale

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, device: torch.device, bf16: bool) -> dict[str, float]:
        model.eval()
        gains: dict[int, list[float]] = {}
        for q, clean, degraded in self.items:
            x, _, _ = pad_to_multiple(to_tensor(degraded)[None].to(device), 32)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                y = model(x)
            h, w = clean.shape[:2]
            out = (y[0, :, :h, :w].float().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
            base = degraded if self.scale == 1 else np.asarray(
                __import__("PIL.Image", fromlist=["Image"]).fromarray(degraded).resize((w, h), 3)
            )
            gains.setdefault(q, []).append(psnr(out, clean) - psnr(base, clean))
        model.train()
        result = {f"gain_q{q}": float(np.mean(v)) for q, v in gains.items()}
        result["gain_mean"] = float(np.mean(list(result.values())))
        return result


class GeneratorTrainer:
    def __init__(self, cfg: dict, run_dir: Path, device: torch.device | None = None, quiet: bool = False):
        self.cfg, self.run_dir, self.quiet = cfg, Path(run_dir), quiet
        self.device = device or pick_device()
        torch.manual_seed(cfg["seed"])
        self.model = UNetGenerator(UNetConfig(**cfg["model"])).to(self.device)
        if cfg.get("encoder_weights"):
            load_encoder_weights(self.model, cfg["encoder_weights"])
        if cfg["channels_last"]:
            self.model = self.model.to(memory_format=torch.channels_last)
        o = cfg["optim"]
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=o["lr"], betas=tuple(o["betas"]), weight_decay=o["weight_decay"])
        self.loss = WeightedLoss(cfg["loss"])
        self.bf16 = use_bf16(cfg["bf16"], self.device)
        files = list_images(cfg["data"]["train"])
        train_files, val_files = split_train_val(files, cfg["data"]["val_count"])
        self.train_images = [load_rgb(f) for f in train_files]
        self.val = ValidationSet(val_files, cfg["val_qualities"], cfg["model"]["scale"]) if val_files else None
        self.degradation = build_degradation(cfg["degradation"], cfg["model"]["scale"])
        self.state = {"step": 0, "phase_steps": [p.get("steps") for p in cfg["phases"]], "best": None, "train_files": len(train_files), "val_files": [f.name for f in val_files], "seconds": 0.0}

    # --- bookkeeping -------------------------------------------------------
    def save(self) -> None:
        save_checkpoint(self.run_dir, "checkpoint", {"model": self.model}, {"model": self.opt}, self.state)

    def resume(self) -> None:
        if not has_checkpoint(self.run_dir):
            raise FileNotFoundError(f"no checkpoint to resume in {self.run_dir}")
        self.state = load_checkpoint(self.run_dir, "checkpoint", {"model": self.model}, {"model": self.opt})

    def recipe(self) -> dict:
        c = self.cfg
        return {
            "stage": "generator-pretrain",
            "loss": c["loss"],
            "degradation": c["degradation"],
            "phases": [dict(p, steps=s) for p, s in zip(c["phases"], self.state["phase_steps"])],
            "steps": self.state["step"],
            "train_images": self.state["train_files"],
            "data": c["data"]["train"],
            "seed": c["seed"],
            "device": torch.cuda.get_device_name() if self.device.type == "cuda" else "cpu",
            "hours": round(self.state["seconds"] / 3600, 3),
            "best_val": self.state["best"],
        }

    def export(self, name: str) -> Path:
        path = self.run_dir / f"{name}.safetensors"
        save_model(self.model, path, name=self.cfg["name"], task=self.cfg["task"], recipe=self.recipe(), half=True)
        return path

    def log(self, filename: str, row: dict) -> None:
        path = self.run_dir / filename
        new = not path.exists()
        with path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)

    def validate(self) -> None:
        if self.val is None:
            return
        result = self.val.evaluate(self.model, self.device, self.bf16)
        self.log("val.csv", {"step": self.state["step"], **{k: round(v, 4) for k, v in result.items()}})
        best = self.state["best"]
        if best is None or result["gain_mean"] > best["gain_mean"]:
            self.state["best"] = {"step": self.state["step"], **result}
            self.export("best")
        if not self.quiet:
            tqdm.write(f"step {self.state['step']}: val PSNR gain {result['gain_mean']:+.3f} dB " + " ".join(f"{k[5:]}={v:+.2f}" for k, v in result.items() if k != "gain_mean"))

    # --- training ----------------------------------------------------------
    def train(self, stop_at_step: int | None = None) -> None:
        """Run (or continue) all phases. ``stop_at_step`` simulates an interruption (tests)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.json").write_text(json.dumps(self.cfg, indent=1))
        interrupted = False

        def on_sigint(signum, frame):
            nonlocal interrupted
            interrupted = True

        previous = signal.signal(signal.SIGINT, on_sigint) if _main_thread() else None
        try:
            phase_start = 0
            for i, phase in enumerate(self.cfg["phases"]):
                finished = self._run_phase(i, phase, phase_start, stop_at_step, lambda: interrupted)
                if not finished:
                    self.save()
                    if not self.quiet:
                        tqdm.write(f"stopped at step {self.state['step']}; checkpoint saved in {self.run_dir} (continue with --resume)")
                    return
                phase_start += self.state["phase_steps"][i]
            self.validate()
            self.save()
            self.export("final")
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)

    def _run_phase(self, index: int, phase: dict, phase_start: int, stop_at_step, interrupted) -> bool:
        """Train one phase to its end (True) or until interrupted (False)."""
        steps = self.state["phase_steps"][index]  # None until a timed phase has been probed
        local = self.state["step"] - phase_start
        if steps is not None and local >= steps:
            return True
        batch = phase["batch"]
        seed = self.cfg["seed"] * 1000 + index
        dataset = PairDataset(self.train_images, phase["patch"], self.degradation, seed, self.cfg["model"]["scale"])
        last = (steps if steps is not None else 10**8) * batch
        workers = self.cfg["data"]["workers"]
        loader = DataLoader(
            dataset, batch_size=batch, sampler=RangeSampler(local * batch, last), num_workers=workers,
            drop_last=True, pin_memory=self.device.type == "cuda", prefetch_factor=4 if workers else None,
        )
        bar = tqdm(total=steps, initial=local, desc=f"{phase['name']} ({phase['patch']}px)", disable=self.quiet, dynamic_ncols=True)
        since_start, probe_t0, t_last = 0, 0.0, time.monotonic()
        self.model.train()
        for degraded, clean in loader:
            if steps is None:  # timed phase: measure steps [10, 40) after (re)start
                if since_start == RATE_PROBE_STEPS[0]:
                    probe_t0 = time.monotonic()
                elif since_start == RATE_PROBE_STEPS[1]:
                    rate = (RATE_PROBE_STEPS[1] - RATE_PROBE_STEPS[0]) / (time.monotonic() - probe_t0)
                    steps = max(int(rate * phase["minutes"] * 60), local + 1)
                    self.state["phase_steps"][index] = steps
                    bar.total = steps
                    if not self.quiet:
                        tqdm.write(f"phase {phase['name']}: {rate:.2f} steps/s -> {steps} steps in {phase['minutes']} min")
            # Warm-up (>= 40 steps) covers the probe, so the lr never depends on the probed total.
            lr = lr_at(local, steps or 10**6, self.cfg["optim"])
            for group in self.opt.param_groups:
                group["lr"] = lr
            loss, parts = self._step(degraded, clean)
            local += 1
            since_start += 1
            self.state["step"] += 1
            now = time.monotonic()
            self.state["seconds"] += now - t_last
            t_last = now
            bar.update(1)
            step = self.state["step"]
            if step % 10 == 0:
                bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}")
                self.log("train.csv", {"step": step, "phase": phase["name"], "loss": round(loss, 6), "lr": lr, **{k: round(v, 6) for k, v in parts.items()}})
            if step % self.cfg["checkpoint_every"] == 0:
                self.save()
            if step % self.cfg["val_every"] == 0:
                self.validate()
            if steps is not None and local >= steps:
                break
            if interrupted() or (stop_at_step is not None and step >= stop_at_step):
                bar.close()
                return False
        bar.close()
        return True

    def _step(self, degraded: torch.Tensor, clean: torch.Tensor) -> tuple[float, dict[str, float]]:
        degraded = degraded.to(self.device, non_blocking=True)
        clean = clean.to(self.device, non_blocking=True)
        if self.cfg["channels_last"]:
            degraded = degraded.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            pred = self.model(degraded)
        loss, parts = self.loss(pred, clean)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg["optim"]["grad_clip"]:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg["optim"]["grad_clip"])
        self.opt.step()
        return float(loss.detach()), parts


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def run_training(config_path: str | None, run_dir: str, resume: bool = False, overrides: dict | None = None) -> Path:
    from revamp.train.config import load_config

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    cfg = load_config(config_path, overrides)
    trainer = GeneratorTrainer(cfg, Path(run_dir))
    if resume:
        trainer.resume()
    trainer.train()
    return Path(run_dir)
