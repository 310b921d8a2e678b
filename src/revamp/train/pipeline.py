"""`revamp train generator|critic|gan|all`: the NoGAN stages in one run folder.

    RUN/generator/  stage 1 (best.safetensors, final.safetensors, logs)
    RUN/critic/     stage 2 (critic.safetensors)
    RUN/gan/        stage 3 (best.safetensors by validation LPIPS, final.safetensors)
    RUN/model.safetensors  the result of `train all`
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from revamp.train.config import load_config

STAGES = ("generator", "critic", "gan")


def _done(run: Path, stage: str) -> bool:
    return (run / stage / ("critic.safetensors" if stage == "critic" else "final.safetensors")).is_file()


def _generator_file(run: Path) -> Path:
    path = run / "generator" / "best.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: train the generator stage first")
    return path


def run_stage(stage: str, cfg: dict, run: Path, resume: bool = False, data=None, device=None, quiet: bool = False) -> bool:
    from revamp.train.generator import GeneratorTrainer
    from revamp.train.nogan import CriticTrainer, GanTrainer

    out = run / stage
    if stage == "generator":
        trainer = GeneratorTrainer(cfg, out, device=device, quiet=quiet, data=data)
    elif stage == "critic":
        trainer = CriticTrainer(cfg, out, _generator_file(run), device=device, quiet=quiet, data=data)
    elif stage == "gan":
        critic = run / "critic" / "critic.safetensors"
        if not critic.is_file():
            raise FileNotFoundError(f"{critic} not found: train the critic stage first")
        trainer = GanTrainer(cfg, out, _generator_file(run), critic, device=device, quiet=quiet, data=data)
    else:
        raise ValueError(f"unknown stage {stage!r}")
    if resume and (out / "checkpoint.json").is_file():
        trainer.resume()
    return trainer.train()


def run_training(stage: str, config_path: str | None, run_dir: str, resume: bool = False, overrides: dict | None = None) -> int:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    cfg = load_config(config_path, overrides)
    run = Path(run_dir)
    if stage != "all":
        return 0 if run_stage(stage, cfg, run, resume) else 130
    from revamp.train.common import TrainingData

    data = TrainingData(cfg)  # loaded once for the three stages
    for name in STAGES:
        if resume and _done(run, name):
            continue
        if not run_stage(name, cfg, run, resume, data=data):
            return 130
    best = run / "gan" / "best.safetensors"
    if int(os.environ.get("RANK", "0")) == 0:
        shutil.copyfile(best if best.is_file() else run / "gan" / "final.safetensors", run / "model.safetensors")
    return 0
