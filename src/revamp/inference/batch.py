"""Restoring many image files: input discovery, output naming, per-file errors, a summary, and
several workers sharing one archive.

Workers (processes on one machine, or on several that share the output folder's file system)
split the work by claiming each file before restoring it: an exclusive lock (fcntl.lockf) on a
claim file in OUTDIR/.revamp-claims/. A worker that finds a file locked leaves it to its owner;
one that gets the lock and finds the output written skips it. The kernel releases a crashed
worker's lock at once (NFS: when the client's lease expires), so its file is taken by the next
worker; outputs are written atomically, so a crash leaves no half-written picture (only a hidden
temporary, which the next worker to claim that file removes). Claims are
removed as files finish, and the folder with the last one.
"""
from __future__ import annotations

import fcntl
import glob
import hashlib
import json
import os
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
    skipped: list[Path] = field(default_factory=list)  # the output exists
    claimed: list[Path] = field(default_factory=list)  # another worker is restoring it
    failed: list[tuple[Path, str]] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps({"done": [str(p) for p in self.done], "skipped": [str(p) for p in self.skipped],
                           "claimed_by_other_workers": [str(p) for p in self.claimed],
                           "failed": [{"input": str(p), "reason": r} for p, r in self.failed]}, indent=1)


CLAIMS = ".revamp-claims"


class Claim:
    """An exclusive, crash-safe claim on one output (see the module docstring)."""

    def __init__(self, target: Path):
        self.path = target.parent / CLAIMS / (hashlib.sha256(os.fsencode(target.name)).hexdigest()[:32] + ".lock")
        self.fd: int | None = None
        # The claim file was there already: its last holder was killed (or has just finished). Racy,
        # but it only decides whether run_batch looks for a killed writer's leftovers.
        self.inherited = False

    def acquire(self) -> bool:
        for _ in range(5):  # another worker may remove the folder between our mkdir and open
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.inherited = self.path.exists()
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                break
            except FileNotFoundError:
                continue
        else:
            raise OSError(f"cannot create a claim in {self.path.parent}")
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self.fd = fd
        return True

    def release(self) -> None:
        """Unlink, then unlock. A worker that opened the file before the unlink and locks it after
        finds the output written (run_batch checks again after every claim), so it is safe."""
        if self.fd is not None:
            self.path.unlink(missing_ok=True)
            os.close(self.fd)
            self.fd = None
            try:
                self.path.parent.rmdir()  # the last worker out removes the folder
            except OSError:
                pass  # others are still working


def read_manifest(path: str | Path) -> list[str]:
    """One input path per line; blank lines and lines starting with # are ignored."""
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read manifest {path}: {exc}") from None
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


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
        claim = Claim(job.target)
        try:
            claimed = claim.acquire()
        except OSError as exc:  # an output folder we cannot write to
            msg = " ".join(str(exc).split()) or type(exc).__name__
            report.failed.append((job.source, msg))
            tqdm.write(f"revamp: error: {job.source}: {msg}", file=sys.stderr)
            continue
        if not claimed:
            report.claimed.append(job.source)
            continue
        try:
            # A worker killed mid-write (kill -9, power loss) leaves its claim file and its temporary
            # behind; the claim's holder is the only writer of this output, so the leftovers are safe
            # to remove (looked for only then: the search lists the whole folder).
            if claim.inherited:
                for stale in job.target.parent.glob(f".{glob.escape(job.target.name)}.*.part"):
                    stale.unlink(missing_ok=True)
            if job.target.exists() and not overwrite:  # another worker finished it since we looked
                report.skipped.append(job.source)
                continue
            _restore_one(restorer, job, fmt, max_pixels, bar, report)
        finally:
            claim.release()
    return report


def _restore_one(restorer, job: Job, fmt: str, max_pixels: int, bar, report: BatchReport) -> None:
    """Restore one claimed file; errors are the file's, reported and recorded, and the batch goes on."""
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
