"""Models shipped inside the package. One entry per model; files live in revamp/weights/, each
checked against weights/SHA256SUMS when it is first used (regenerate it with `sha256sum` in that
folder when a file is replaced).

The quality line of each model (``measured_quality``) is read from weights/measured.json, which
`make measured` writes from its `revamp eval` summaries: measured, never typed here.
"""
from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path


@dataclass(frozen=True)
class ShippedModel:
    name: str
    file: str
    task: str


# What `revamp video` restores with unless told otherwise: the single-frame model trained on video.
VIDEO_MODEL = "video"

SHIPPED = {
    m.name: m
    for m in [
        ShippedModel(
            name="default",
            file="default.safetensors",
            task="JPEG and video-codec artifact removal (any quality), light decoder, codec-aware: reads the quantiser",
        ),
        ShippedModel(
            name="video",
            file="video.safetensors",
            task="`revamp video`'s default: `default` trained further on real-codec video (natural clips, I/P/B frames), codec-aware",
        ),
        ShippedModel(
            name="video-quality",
            file="video-quality.safetensors",
            task="video, multi-frame (also sees the frames before and after), full decoder, codec-aware: more than `video` at 0.6x its speed",
        ),
        ShippedModel(
            name="full",
            file="full.safetensors",
            task="JPEG and video-codec artifact removal, full decoder, blind: more PSNR than default, slower",
        ),
        ShippedModel(
            name="full-psnr",
            file="full-psnr.safetensors",
            task="JPEG artifact removal, full decoder, pixel loss only: highest PSNR, softer",
        ),
        ShippedModel(
            name="sr2x",
            file="sr2x.safetensors",
            task="super-resolution x2 plus artifact removal",
        ),
        ShippedModel(
            name="sr4x",
            file="sr4x.safetensors",
            task="super-resolution x4 plus artifact removal",
        ),
    ]
}


def weights_dir() -> Path:
    return Path(str(resources.files("revamp") / "weights"))


class DamagedWeightsError(ValueError):
    """A file of revamp/weights does not hash to its SHA256SUMS entry."""


@functools.cache
def _expected_sha256() -> dict[str, str]:
    lines = (weights_dir() / "SHA256SUMS").read_text().splitlines()
    return {name.lstrip("*"): digest for digest, name in (line.split(maxsplit=1) for line in lines if line.strip())}


@functools.cache
def _check_sha256(path: Path, size: int, mtime_ns: int) -> None:  # size and mtime: a replaced file is hashed again
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    expected = _expected_sha256().get(path.name)
    if digest != expected:
        raise DamagedWeightsError(f"{path}: {'not listed in' if expected is None else 'does not match'} the package's SHA256SUMS "
                                  "(damaged or replaced; reinstall revamp)")


def weights_file(name: str) -> Path:
    """A file of revamp/weights, checked against its sha256 (once per process)."""
    path = weights_dir() / name
    stat = path.stat()
    _check_sha256(path, stat.st_size, stat.st_mtime_ns)
    return path


def measured_quality(name: str) -> str:
    """What `make measured` recorded for a shipped model ('not measured' if nothing)."""
    measured = json.loads((weights_dir() / "measured.json").read_text())
    return measured.get(name, {}).get("quality", "not measured")


def resolve_model(name_or_path: str) -> Path:
    """A shipped model's name or a path to a .safetensors file -> the file's path."""
    if name_or_path in SHIPPED:
        return weights_file(SHIPPED[name_or_path].file)
    path = Path(name_or_path)
    if path.suffix == ".safetensors" or path.exists():
        return path
    raise ValueError(f"unknown model {name_or_path!r}: use one of {', '.join(SHIPPED)} or a path to a .safetensors file")
