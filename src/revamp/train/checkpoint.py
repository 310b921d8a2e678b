"""Training checkpoints without pickle: tensors in safetensors, everything else in JSON.

A checkpoint is two files written atomically side by side: ``checkpoint.safetensors``
(model, optimizer moments, RNG states) and ``checkpoint.json`` (step, phase,
optimizer hyper-parameters, trainer state).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from revamp.imageio import write_atomic


def save_checkpoint(run_dir: Path, prefix: str, modules: dict[str, torch.nn.Module], optimizers: dict[str, torch.optim.Optimizer], state: dict) -> None:
    tensors: dict[str, torch.Tensor] = {}
    for name, module in modules.items():
        for key, value in module.state_dict().items():
            tensors[f"{name}/{key}"] = value.detach().cpu().contiguous()
    opt_meta = {}
    for name, opt in optimizers.items():
        sd = opt.state_dict()
        for idx, pstate in sd["state"].items():
            for key, value in pstate.items():
                tensors[f"optim.{name}/{idx}/{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
        opt_meta[name] = sd["param_groups"]
    tensors["rng/cpu"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/cuda{i}"] = s
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / f".{prefix}.safetensors.tmp"
    save_file(tensors, str(tmp))
    os.replace(tmp, run_dir / f"{prefix}.safetensors")
    # JSON last: a checkpoint counts only once its JSON names the step of the tensors.
    write_atomic(run_dir / f"{prefix}.json", json.dumps({"state": state, "optimizers": opt_meta}, indent=1).encode())


def load_checkpoint(run_dir: Path, prefix: str, modules: dict[str, torch.nn.Module], optimizers: dict[str, torch.optim.Optimizer]) -> dict:
    meta = json.loads((run_dir / f"{prefix}.json").read_text())
    tensors = load_file(str(run_dir / f"{prefix}.safetensors"))
    for name, module in modules.items():
        sd = {k.split("/", 1)[1]: v for k, v in tensors.items() if k.startswith(f"{name}/")}
        if not sd:
            raise ValueError(f"the checkpoint in {run_dir} has no {name!r} weights: it was made with another config (e.g. without optim.ema)")
        module.load_state_dict(sd)
    for name, opt in optimizers.items():
        state: dict[int, dict] = {}
        for key, value in tensors.items():
            if key.startswith(f"optim.{name}/"):
                _, idx, field = key.split("/")
                state.setdefault(int(idx), {})[field] = value
        opt.load_state_dict({"state": state, "param_groups": meta["optimizers"][name]})
    torch.set_rng_state(tensors["rng/cpu"])
    if torch.cuda.is_available():
        cuda_states = [tensors[k] for k in sorted(tensors) if k.startswith("rng/cuda")]
        if cuda_states:
            torch.cuda.set_rng_state_all(cuda_states)
    return meta["state"]


def has_checkpoint(run_dir: Path, prefix: str = "checkpoint") -> bool:
    return (run_dir / f"{prefix}.json").is_file() and (run_dir / f"{prefix}.safetensors").is_file()
