"""Restoring many image files: input discovery, output naming, per-file errors, a summary."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from revamp.codec import hint_for_image
from revamp.imageio import INPUT_SUFFIXES, MAX_PIXELS, ImageReadError, output_suffix, read_image, save_image


@dataclass
class Job:
    source: Path
    target: Path


@dataclass
class BatchReport:
    done: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def plan_jobs(inputs: list[str], outdir: Path, fmt: str) -> tuple[list[Job], list[tuple[Path, str]]]:
    """Files map to OUTDIR/<name>; folders are searched recursively and keep their structure."""
    suffix = output_suffix(fmt)
    jobs: list[Job] = []
    errors: list[tuple[Path, str]] = []
    seen: dict[Path, Path] = {}
    out_resolved = outdir.resolve()
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            # An output folder inside the input folder holds earlier results, not inputs.
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in INPUT_SUFFIXES and not p.name.startswith(".")
                           and not p.resolve().is_relative_to(out_resolved))
            pairs = [(p, p.relative_to(path)) for p in found]
            if not found:
                errors.append((path, "folder contains no image files"))
        elif path.is_file():
            pairs = [(path, Path(path.name))]
        else:
            errors.append((path, "no such file or folder"))
            continue
        for source, rel in pairs:
            target = (outdir / rel).with_suffix(suffix)
            if target in seen:
                errors.append((source, f"output {target} would also be written from {seen[target]}; restore them into different folders"))
                continue
            seen[target] = source
            jobs.append(Job(source, target))
    return jobs, errors


def run_batch(restorer, jobs: list[Job], fmt: str, overwrite: bool, quiet: bool = False, max_pixels: int = MAX_PIXELS) -> BatchReport:
    report = BatchReport()
    bar = tqdm(jobs, unit="img", desc="restoring", disable=quiet, dynamic_ncols=True)
    for job in bar:
        bar.set_postfix_str(job.source.name[-40:])
        if job.target.exists() and not overwrite:
            report.skipped.append(job.source)
            continue
        if job.target.resolve() == job.source.resolve():
            report.failed.append((job.source, "output would replace the input file"))
            tqdm.write(f"revamp: error: {job.source}: output would replace the input file", file=sys.stderr)
            continue
        try:
            pic = read_image(job.source, max_pixels)
            for note in pic.warnings:
                tqdm.write(f"revamp: warning: {job.source}: {note}", file=sys.stderr)
            tiles, done = restorer.tile_count(*pic.size), [0]

            def on_tile() -> None:  # big images: show progress inside the image too
                done[0] += 1
                if tiles > 1:
                    bar.set_postfix_str(f"{job.source.name[-30:]} tile {done[0]}/{tiles}")

            # Codec-aware models: the file's JPEG tables, else the pixel estimator, else blind.
            hint = hint_for_image(job.source, pic.rgb) if restorer.codec_aware else None
            out = restorer.restore_picture(pic, on_tile, inplace=True, hint=hint)  # pic is not needed afterwards
            save_image(out, job.target, fmt)
            report.done.append(job.source)
        except ImageReadError as exc:
            report.failed.append((job.source, str(exc).removeprefix(f"{job.source}: ")))
            tqdm.write(f"revamp: error: {exc}", file=sys.stderr)
        except (OSError, ValueError, RuntimeError) as exc:
            msg = " ".join(str(exc).split()) or type(exc).__name__
            if isinstance(exc, RuntimeError) and "memory" in msg.lower():
                msg += " (try a smaller --tile)"
            report.failed.append((job.source, msg))
            tqdm.write(f"revamp: error: {job.source}: {msg}", file=sys.stderr)
    return report
