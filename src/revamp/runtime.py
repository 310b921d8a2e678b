"""Where code runs, shared by inference and training: device choice, bf16 detection, and the
process group under torchrun."""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Dist:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def any(self, flag: bool) -> bool:
        """True on every rank if it is true on one (stop together)."""
        if self.world == 1:
            return flag
        t = torch.tensor([1.0 if flag else 0.0])
        dist.all_reduce(t)
        return bool(t.item() > 0)

    def from_main(self, value: int) -> int:
        if self.world == 1:
            return value
        t = torch.tensor([value], dtype=torch.long)
        dist.broadcast(t, 0)
        return int(t.item())


def init_distributed(device: torch.device) -> Dist:
    """Join the process group when started by torchrun (gloo on CPU, nccl on GPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size())


def pick_device(device: str = "auto") -> torch.device:
    """``auto``: the GPU of this rank (LOCAL_RANK under torchrun) when there is one, else the CPU."""
    if device != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def use_bf16(setting, device: torch.device) -> bool:
    if setting in (True, False):
        return setting
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return cpu_has_bf16_units()


def cpu_has_bf16_units() -> bool:
    """AMX or AVX512-BF16: where bf16 autocast pays off on a CPU. torch's own capability string
    stops at "AVX512" on CPUs that have AMX, so read the kernel's flags."""
    if "AMX" in torch.backends.cpu.get_cpu_capability():
        return True
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(next((line for line in f if line.startswith("flags")), "").split())
    except OSError:
        return False
    return bool(flags & {"amx_bf16", "avx512_bf16"})


def has_onnxruntime() -> bool:
    """Installed (the ``onnx`` extra), without importing it."""
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


DISTRIBUTION = "revamp-restore"  # the name on PyPI (the import name and the command are `revamp`)


class MissingExtra(ImportError):
    """An optional dependency is not installed: the message says which extra brings it."""


def need(module: str, extra: str, purpose: str):
    """Import an optional dependency, or say in one line how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(f"{purpose} needs {module.split('.')[0]}: pip install '{DISTRIBUTION}[{extra}]'") from None
