"""The `revamp` command line. Each sub-command is a thin layer over a module of the package."""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from revamp.defaults import (OUTPUT_CRF_MAX, OUTPUT_CRF_MIN, STABILIZE, STRENGTH, TILE, TILE_OVERLAP,
                             VIDEO_TILE)
from revamp.imageio import MAX_PIXELS
from revamp.models.registry import VIDEO_MODEL
from revamp.video.io import PIPE

EXIT_FAILED_FILES = 2  # a batch finished but some inputs failed


class CliError(Exception):
    """A fatal problem reported as one line (no traceback)."""


def _parse_set(items: list[str]) -> dict:
    """--set a.b=value (value parsed as YAML) -> {"a.b": value}, applied in order by load_config."""
    from revamp.train.config import load_yaml

    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"--set needs KEY=VALUE, got {item!r}")
        out[key] = load_yaml(value)
    return out


def _number(kind: type, low: float | None = None, high: float | None = None, below: float | None = None, multiple: int | None = None):
    """An argparse type: a number of ``kind`` in [low, high] (or [low, below)), optionally a
    multiple of ``multiple``; anything else is a usage error before any work starts."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if math.isnan(value) or (low is not None and value < low) or (high is not None and value > high) or (below is not None and value >= below):
            bounds = f"at least {low:g}" if high is None and below is None else (
                f"in [{low:g}, {below:g})" if below is not None else f"between {low:g} and {high:g}")
            raise argparse.ArgumentTypeError(f"{text} is out of range: must be {bounds}")
        if multiple and value % multiple:
            raise argparse.ArgumentTypeError(f"{text} is not a multiple of {multiple}")
        return value
    return parse


def _megapixels(text: str) -> int:
    return int(_number(float, low=0.001)(text) * 1e6)


def _restorer(args, model: str | None = None):
    """The Restorer the inference options in ``args`` ask for (``model``: instead of args.model)."""
    from revamp.inference.restorer import Restorer
    from revamp.models.files import ModelFileError

    options = {k: getattr(args, k) for k in ("device", "tile", "tile_overlap", "backend", "strength", "compile", "even_tiles", "ensemble")
               if hasattr(args, k)}
    try:
        return Restorer(model or args.model, **options)
    except (ModelFileError, ValueError, FileNotFoundError) as exc:
        raise CliError(str(exc)) from None


def _print_summary(report, outdir: Path, prefix: str = "") -> int:
    parts = [f"{prefix}{len(report.done)} restored"]
    if report.skipped:
        parts.append(f"{len(report.skipped)} skipped (output exists; --overwrite replaces it)")
    if report.claimed:
        parts.append(f"{len(report.claimed)} left to other workers")
    if report.failed:
        parts.append(f"{len(report.failed)} failed")
    print(f"revamp: {', '.join(parts)}; outputs in {outdir}", file=sys.stderr)
    for path, reason in report.failed:
        print(f"  failed: {path}: {reason}", file=sys.stderr)
    return EXIT_FAILED_FILES if report.failed else 0


def _static_shard() -> tuple[int, int]:
    """(rank, world) of a statically sharded run: torchrun (RANK, WORLD_SIZE) or a Slurm array
    job (SLURM_ARRAY_TASK_ID from SLURM_ARRAY_TASK_MIN, SLURM_ARRAY_TASK_COUNT); else (0, 1)."""
    env = os.environ
    if int(env.get("WORLD_SIZE", 1)) > 1:
        return int(env.get("RANK", 0)), int(env["WORLD_SIZE"])
    if int(env.get("SLURM_ARRAY_TASK_COUNT", 1)) > 1:
        return int(env["SLURM_ARRAY_TASK_ID"]) - int(env.get("SLURM_ARRAY_TASK_MIN", 0)), int(env["SLURM_ARRAY_TASK_COUNT"])
    return 0, 1


def cmd_image(args) -> int:
    from revamp.inference.batch import BatchReport, plan_jobs, read_manifest, run_batch

    outdir = Path(args.output)
    inputs = args.inputs + args.input
    if args.manifest:
        try:
            inputs += read_manifest(args.manifest)
        except ValueError as exc:
            raise CliError(str(exc)) from None
    if not inputs:
        raise CliError("no inputs: give files or folders, -i/--input, or --manifest FILE")
    if args.outscale:
        args.model = {1: args.model, 2: "sr2x", 4: "sr4x"}[args.outscale] if args.model == "default" else args.model
    jobs, errors = plan_jobs(inputs, outdir, args.format)
    # Static shards (torchrun ranks, Slurm array tasks): every process plans the same sorted job
    # list and takes every world-th job from its rank, with no communication needed. Processes
    # started without one share the work through claims instead (revamp.inference.batch).
    rank, world = _static_shard()
    if world > 1:
        jobs, errors = jobs[rank::world], errors if rank == 0 else []
    for path, reason in errors:
        print(f"revamp: error: {path}: {reason}", file=sys.stderr)
    restorer = _restorer(args) if jobs else None
    if restorer is not None and args.outscale and restorer.scale != args.outscale:
        raise CliError(f"model {args.model} upscales x{restorer.scale}, not x{args.outscale}")
    report = (run_batch(restorer, jobs, args.format, args.overwrite, quiet=args.quiet or rank > 0, max_pixels=args.max_pixels)
              if jobs else BatchReport())
    report.failed = errors + report.failed
    if args.report:
        from revamp.imageio import write_atomic

        write_atomic(args.report, report.to_json().encode())
    return _print_summary(report, outdir, f"shard {rank}/{world}: " if world > 1 else "")


def cmd_video(args) -> int:
    from revamp.video.io import VideoError
    from revamp.video.job import VideoOptions, restore_video

    if args.scale and args.model == VIDEO_MODEL:
        args.model = {1: VIDEO_MODEL, 2: "sr2x", 4: "sr4x"}[args.scale]
    restorer = _restorer(args)
    if args.scale and restorer.scale != args.scale:
        raise CliError(f"model {args.model} upscales x{restorer.scale}, not x{args.scale}")
    options = VideoOptions(codec=args.codec, quality=args.crf, deinterlace=args.deinterlace,
                           stabilize=0.0 if args.no_stabilize else args.stabilize, segment_frames=args.segment_frames)
    if PIPE in (args.input, args.output):
        return _video_pipe(args, restorer, options)
    import torch

    from revamp.runtime import init_distributed

    dist = init_distributed(torch.device("cpu"))  # under torchrun: ranks share the segments (gloo barriers)
    try:
        report = restore_video(args.input, args.output, restorer, options, resume=args.resume, overwrite=args.overwrite,
                               quiet=args.quiet, dist=dist if dist.world > 1 else None)
    except VideoError as exc:
        raise CliError(str(exc)) from None
    except KeyboardInterrupt:
        print("revamp: interrupted; finished segments are kept, run again with --resume to continue", file=sys.stderr)
        return 130
    if dist.rank > 0:
        return 0  # rank 0 reports
    for note in report.notes:
        print(f"revamp: warning: {args.input}: {note}", file=sys.stderr)
    kept = ", ".join(report.copied_streams) or "no other streams"
    print(f"revamp: {report.frames} frames -> {args.output} ({report.restored_frames} restored in this run; copied {kept})", file=sys.stderr)
    if report.damage:
        print(f"revamp: warning: damaged input: {report.damage}; every frame that decoded was restored", file=sys.stderr)
        return EXIT_FAILED_FILES
    return 0


def _video_pipe(args, restorer, options) -> int:
    """`revamp video` with stdin and/or stdout: streamed, no work folder, no resume."""
    from revamp.video.io import VideoError
    from revamp.video.job import restore_stream

    if args.resume:
        raise CliError("--resume needs files: a pipe cannot be read again")
    if os.environ.get("WORLD_SIZE", "1") != "1":
        raise CliError("torchrun shares a video file's segments; a pipe has one reader")
    if args.output == PIPE and sys.stdout.isatty():
        raise CliError("-o - writes a y4m stream to stdout: pipe it into another program (e.g. ffmpeg -f yuv4mpegpipe -i -)")
    try:
        report = restore_stream(args.input, args.output, restorer, options, overwrite=args.overwrite, quiet=args.quiet)
    except VideoError as exc:
        raise CliError(str(exc)) from None
    for note in report.notes:
        print(f"revamp: warning: {args.input}: {note}", file=sys.stderr)
    where = "stdout (y4m)" if args.output == PIPE else args.output
    print(f"revamp: {report.frames} frames -> {where}", file=sys.stderr)
    if report.damage:
        print(f"revamp: warning: damaged input: {report.damage}; every frame that decoded was restored", file=sys.stderr)
        return EXIT_FAILED_FILES
    return 0


def cmd_models(args) -> int:
    import json
    import math

    from safetensors import safe_open

    from revamp.models.files import read_metadata, training_compute, training_runs
    from revamp.models.registry import SHIPPED, measured_quality, weights_file

    rows = [("name", "task", "scale", "params", "training data", "training compute", "quality")]
    for entry in SHIPPED.values():
        path = weights_file(entry.file)
        meta = read_metadata(path)
        config, recipe = json.loads(meta["config"]), json.loads(meta.get("recipe", "{}"))
        with safe_open(str(path), framework="pt") as f:
            params = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
        data = ", ".join(Path(d).name for d in recipe.get("data", []) + (recipe.get("clips") or [])) or "?"
        runs = training_runs(recipe)
        compute = training_compute(recipe)
        spent = f"{compute['cpu_hours']:g} CPU h, {compute['gpu_minutes']:g} GPU min, {compute['samples']} samples"
        rows.append((entry.name, entry.task, f"x{config['scale']}", f"{params / 1e6:.1f} M",
                     f"{data} ({recipe.get('train_images', '?')} images, {compute['steps'] or '?'} steps"
                     f"{f' in {len(runs)} runs' if len(runs) > 1 else ''})", spent, measured_quality(entry.name)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def cmd_eval(args) -> int:
    from revamp.evaluation.images import evaluate, parse_degradations

    try:
        degradations = parse_degradations(args.degrade)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    data = Path(args.data)
    if not data.is_dir():
        raise CliError(f"{data}: no such folder")
    models = {}
    for name in args.model:
        models[f"{name} x8" if args.ensemble else name] = _restorer(args, name)
    if args.video:
        return _eval_video(args, models, degradations, data)
    try:
        summary = evaluate(models, data, degradations, args.metrics.split(","), args.channel, args.crop, Path(args.out), quiet=args.quiet, scale=args.scale, baseline=args.baseline, html=args.html, gray=args.gray)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    from revamp.evaluation.images import summary_markdown

    print(summary_markdown(summary))
    return 0


def _eval_video(args, models, degradations, data: Path) -> int:
    from revamp.evaluation.video import evaluate_video, video_markdown

    try:
        summary = evaluate_video(models, data, degradations, Path(args.out), stabilize=args.stabilize, max_frames=args.max_frames,
                                 baseline=args.baseline, quiet=args.quiet)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    print(video_markdown(summary))
    return 0


def cmd_bench(args) -> int:
    import json

    from revamp.evaluation.speed import DECODERS, ENCODERS, available_backends, bench_markdown, run_bench

    encoders = args.encoders.split(",") if args.encoders else list(ENCODERS)
    decoders = args.decoders.split(",") if args.decoders else list(DECODERS)
    if set(decoders) - set(DECODERS):
        raise CliError(f"unknown decoder(s) {', '.join(sorted(set(decoders) - set(DECODERS)))}: use {', '.join(DECODERS)}")
    backends = args.backends.split(",") if args.backends else available_backends()
    unknown = sorted(set(backends) - set(available_backends()))
    if unknown:
        raise CliError(f"backend(s) not available here: {', '.join(unknown)} (have {', '.join(available_backends())})")

    def progress(row):
        if not args.quiet:
            print(f"  {row['encoder']:24s} {row['decoder']:5s} {row['backend']:12s} {row['size']:>9s}: {row['s_per_frame']:.3f} s/frame", file=sys.stderr)

    report = run_bench(encoders, args.sizes.split(","), backends, width=args.width, runs=args.runs, tile=args.tile, progress=progress,
                       decoders=decoders)
    report["command"] = (f"revamp bench --encoders {','.join(encoders)} --decoders {','.join(decoders)} --sizes {args.sizes} --backends {','.join(backends)} "
                         f"--width {args.width} --runs {args.runs} --tile {args.tile}")
    print(bench_markdown(report))
    if args.json:
        from revamp.imageio import write_atomic

        write_atomic(args.json, (json.dumps(report, indent=1) + "\n").encode())
    return 0


def cmd_export(args) -> int:
    from revamp.inference.export import describe, export_onnx, max_difference
    from revamp.models.files import ModelFileError
    from revamp.models.registry import resolve_model

    try:
        path = resolve_model(args.model)
        out = export_onnx(path, args.output, opset=args.opset)
    except (ModelFileError, ValueError, FileNotFoundError) as exc:
        raise CliError(str(exc)) from None
    info = describe(out)
    if args.check:
        from revamp.imageio import read_image

        picture = read_image(args.check)
        check = (picture.rgb[:512, :512] * 255 + 0.5).astype("uint8")
    else:  # a smooth picture with hard edges, the kind of content compression damages
        import numpy as np

        yy, xx = np.mgrid[0:256, 0:256]
        check = np.stack([(xx + yy) // 2, 128 + 100 * np.sin(xx / 9.0) * np.cos(yy / 13.0), (xx // 32 % 2) * 255], axis=2).astype("uint8")
    diff = max_difference(path, out, check)
    print(f"revamp: wrote {out} (opset {info['opset']}, input {info['inputs'][0]}); "
          f"max |torch - onnxruntime| on [0, 1] outputs: {diff:.1e}", file=sys.stderr)
    return 0 if diff < 1e-3 else 1


def cmd_study(args) -> int:
    from revamp.study import db

    try:
        conn = db.connect(args.db)
        if args.action == "create":
            methods = {}
            for spec in args.method:
                label, sep, folder = spec.partition("=")
                if not sep or not label or not folder:
                    raise CliError(f"--method needs LABEL=FOLDER, got {spec!r}")
                methods[label] = Path(folder)
            for name in args.model:  # restore the images with each model first
                from revamp.inference.batch import plan_jobs, run_batch

                outdir = Path(args.db).resolve().parent / f"{args.name}-outputs" / Path(name).stem
                jobs, errors = plan_jobs([args.images], outdir, "png")
                restorer = _restorer(argparse.Namespace(backend="auto"), name)
                report = run_batch(restorer, jobs, "png", overwrite=False)
                if errors or report.failed:
                    raise CliError(f"restoring {args.images} with {name} failed: {(errors + report.failed)[0]}")
                methods[Path(name).stem] = outdir
            db.create_study(conn, args.name, Path(args.images), methods, Path(args.reference) if args.reference else None)
            n = conn.execute("SELECT COUNT(*) FROM items i JOIN studies s ON s.id = i.study_id WHERE s.name = ?", (args.name,)).fetchone()[0]
            print(f"revamp: study {args.name!r}: {n} images x {len(methods)} methods in {args.db}; "
                  f"serve it with `revamp study serve --db {args.db}`", file=sys.stderr)
        elif args.action == "serve":
            from revamp.study.server import make_server

            server = make_server(Path(args.db), args.host, args.port, args.admin_password, args.allow_host)
            print(f"revamp: study server on http://{args.host}:{server.server_address[1]}/ (Ctrl-C stops it)", file=sys.stderr, flush=True)
            try:
                server.serve_forever()
            except KeyboardInterrupt:
                pass
            finally:
                server.server_close()
        else:
            from revamp.study.report import summary_markdown, write_report

            summary = write_report(conn, args.study, Path(args.out))
            print(summary_markdown(summary))
            print(f"revamp: chart {Path(args.out) / 'mos.png'} (and .svg), votes.csv, mos.csv, summary.json", file=sys.stderr)
    except (db.StudyError, OSError) as exc:
        raise CliError(str(exc)) from None
    return 0


def cmd_tables(args) -> int:
    from revamp.evaluation.tables import build

    if args.bench_only:
        from revamp.evaluation.tables import refresh_bench_section
        from revamp.imageio import write_atomic

        write_atomic(args.out, refresh_bench_section(Path(args.out)).encode())
        print(f"revamp: rebuilt the benchmark section of {args.out}", file=sys.stderr)
        return 0
    shared = Path(args.shared)
    if not (shared / "data" / "eval").is_dir():
        raise CliError(f"{shared}/data/eval not found: the tables need the evaluation sets (--shared DIR)")
    if args.only:
        from revamp.evaluation.tables import refresh_section

        try:
            text = refresh_section(Path(args.out), args.only, shared, Path(args.work), limit=args.limit, quiet=args.quiet)
        except (OSError, ValueError) as exc:
            raise CliError(str(exc)) from None
    else:
        text = build(shared, Path(args.work), limit=args.limit, quiet=args.quiet)
    from revamp.imageio import write_atomic

    write_atomic(args.out, text.encode())
    print(f"revamp: wrote {args.out}", file=sys.stderr)
    return 0


def cmd_demo(args) -> int:
    from revamp.demo import write_page
    from revamp.inference.batch import plan_jobs, run_batch

    outdir = Path(args.output)
    jobs, errors = plan_jobs([args.input], outdir / "after", "png")
    if errors:
        raise CliError("; ".join(f"{p}: {r}" for p, r in errors))
    report = run_batch(_restorer(args), jobs, "png", overwrite=True, quiet=args.quiet)
    ok = [(j.source, j.target) for j in jobs if j.source in report.done]
    page = write_page(ok, outdir, args.model)
    print(f"revamp: before/after page: {page.resolve()}", file=sys.stderr)
    return _print_summary(report, outdir)


def cmd_train(args) -> int:
    from revamp.train.pipeline import run_training

    try:
        return run_training(args.stage, args.config, args.run, resume=args.resume, overrides=_parse_set(args.set))
    except (FileNotFoundError, ValueError) as exc:
        raise CliError(str(exc)) from None


def cmd_train_plot(args) -> int:
    from revamp.train.plot import plot_run

    try:
        out = plot_run(Path(args.run), Path(args.out) if args.out else None)
    except FileNotFoundError as exc:
        raise CliError(str(exc)) from None
    print(f"revamp: wrote {out}", file=sys.stderr)
    return 0


def _add_inference_options(p: argparse.ArgumentParser, model: str | None = "default", backend: str = "auto", tile: int = TILE) -> None:
    if model:
        p.add_argument("-n", "--model", "--model-name", dest="model", default=model,
                       help=f"shipped model name (see `revamp models`; default {model}) or a .safetensors file")
    p.add_argument("-t", "--tile", type=_number(int, low=64, multiple=32), default=tile,
                   help=f"tile size in input pixels, a multiple of 32, at least 64 (default {tile})")
    p.add_argument("--tile-overlap", type=_number(int, low=0), default=TILE_OVERLAP, help=f"overlap between tiles in pixels (default {TILE_OVERLAP})")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--backend", default=backend, choices=["auto", "torch", "torch-bf16", "onnxruntime"],
                   help=f"inference engine (default {backend}; auto: the fastest measured on this kind of machine)")
    p.add_argument("--strength", type=_number(float, low=0, high=2), default=STRENGTH, metavar="S",
                   help="how much of the model's correction to keep, 0 to 2: 0 returns the input, 1 is the model as "
                        "trained (default), above 1 also smooths")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    from revamp import __version__

    parser = argparse.ArgumentParser(prog="revamp", description="Restore compressed pictures and archive video.")
    parser.add_argument("--version", action="version", version=f"revamp {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    image = sub.add_parser("image", help="restore image files and folders")
    image.add_argument("inputs", nargs="*", metavar="INPUT", help="image files or folders (searched recursively)")
    image.add_argument("-i", "--input", action="append", default=[], metavar="INPUT", help="an input file or folder (Real-ESRGAN's flag); repeat")
    image.add_argument("--manifest", metavar="FILE", help="a file listing one input path per line")
    image.add_argument("--report", metavar="FILE", help="write what was done, skipped, left to other workers and failed as JSON")
    image.add_argument("-s", "--outscale", type=int, choices=[1, 2, 4], help="upscale x2 or x4 (picks the sr2x/sr4x model)")
    image.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder (input folder structure is kept)")
    image.add_argument("--format", default="png", choices=["png", "jpg", "webp", "tiff"], help="output format (default png)")
    image.add_argument("--overwrite", action="store_true", help="replace outputs that already exist")
    image.add_argument("--max-pixels", type=_megapixels, default=MAX_PIXELS, metavar="MP",
                       help=f"refuse pictures larger than this many megapixels (default {MAX_PIXELS // 10**6})")
    image.add_argument("--ensemble", action="store_true",
                       help="average the restorations of the picture's 8 flips and rotations: more fidelity, 8x the time")
    _add_inference_options(image)
    image.set_defaults(func=cmd_image)

    video = sub.add_parser("video", help="restore a video file (audio and subtitles are copied)")
    video.add_argument("input", metavar="INPUT", help="video file (MPEG-2, MPEG-4, H.264, H.265, ... in any container FFmpeg reads), "
                                                     "or - for a stream on stdin (y4m, MPEG-TS, ...)")
    video.add_argument("-o", "--output", required=True, metavar="OUTPUT", help="output file (.mp4, .mov or .mkv), or - for y4m on stdout")
    video.add_argument("-s", "--scale", "--outscale", dest="scale", type=int, choices=[2, 4], help="upscale x2 or x4 (picks the sr2x/sr4x model)")
    video.add_argument("--codec", default="h264", choices=["h264", "h265", "ffv1", "prores"], help="output codec (default h264)")
    video.add_argument("--crf", type=_number(int, low=0, high=51), help="quality for h264/h265 (lower is better; default: from the input's quantisers, "
                                                 f"fine enough to keep the restoration, {OUTPUT_CRF_MIN}-{OUTPUT_CRF_MAX})")
    video.add_argument("--deinterlace", nargs="?", const="bwdif", choices=["bwdif", "yadif"], help="deinterlace first (default filter bwdif)")
    video.add_argument("--stabilize", type=_number(float, low=0, below=1), metavar="S",
                       help=f"temporal stabilisation strength in [0, 1) (default: the mix the model was shipped with, {STABILIZE} for most)")
    video.add_argument("--no-stabilize", action="store_true", help="restore every frame on its own")
    video.add_argument("--ensemble", action="store_true",
                       help="average the restorations of each frame's 8 flips and rotations: more fidelity, 8x the time")
    video.add_argument("--compile", action="store_true",
                       help="torch.compile the network first (torch backends; needs a C++ compiler): about a minute of "
                            "start-up, then faster per frame; for long videos")
    video.add_argument("--resume", action="store_true", help="continue an interrupted job (finished segments are kept)")
    video.add_argument("--segment-frames", type=_number(int, low=1), default=240, metavar="N",
                       help="frames per segment: the unit of --resume and of sharing a video across torchrun processes (default 240)")
    video.add_argument("--overwrite", action="store_true", help="replace the output if it exists")
    # Video frames are at most 4K: bigger tiles, fewer of them (720p: 2 tiles instead of 6, 1.7x faster).
    _add_inference_options(video, model=VIDEO_MODEL, tile=VIDEO_TILE)
    video.set_defaults(func=cmd_video, even_tiles=True)  # a frame's tiles run side by side: equal sizes finish together

    models = sub.add_parser("models", help="list the shipped models")
    models.set_defaults(func=cmd_models)

    ev = sub.add_parser("eval", help="measure models on a folder of clean images")
    ev.add_argument("--model", action="append", required=True, help="model name or file (repeat to compare)")
    ev.add_argument("--data", required=True, help="folder of clean reference images")
    ev.add_argument("--degrade", action="append", default=[], required=True, help="e.g. jpeg:10,20,30,40")
    ev.add_argument("--metrics", default="psnr,ssim,psnr-b", help="comma list of psnr, ssim, psnr-b, lpips, edge-psnr, edge-lpips (on the dilated Canny edges of the original), niqe, brisque")
    ev.add_argument("--channel", default="rgb", choices=["rgb", "y"], help="measure on RGB or BT.601 Y (default rgb)")
    ev.add_argument("--crop", type=int, default=0, help="border pixels excluded from the metrics (default 0)")
    ev.add_argument("--gray", action="store_true", help="turn colour references into rounded BT.601 Y first (grayscale benchmarks)")
    ev.add_argument("--html", action="store_true", help="also write OUT/index.html: crops per image, sortable by gain")
    ev.add_argument("--baseline", default="spp", choices=["spp", "pp7", "none"], help="classical deblocking row (system ffmpeg; default spp)")
    ev.add_argument("--scale", type=int, default=1, choices=[1, 2, 4], help="super-resolution: bicubic-downscale the references by this factor first")
    ev.add_argument("--video", action="store_true", help="DATA holds clips (video files or frame folders): ΔPSNR/ΔSSIM and temporal metrics")
    ev.add_argument("--stabilize", type=_number(float, low=0, below=1),
                    help=f"with --video: also rows with the temporal stabiliser at this mix (0: none; default: each model's, {STABILIZE} for most)")
    ev.add_argument("--max-frames", type=_number(int, low=2), default=60, help="with --video: frames per clip (default 60)")
    ev.add_argument("--out", default="results/eval", help="folder for per_image.csv, summary.md and summary.json")
    ev.add_argument("--ensemble", action="store_true", help="restore with the x8 self-ensemble (rows named MODEL x8)")
    _add_inference_options(ev, model=None, backend="torch")  # reference numbers in fp32
    ev.set_defaults(func=cmd_eval)

    tables = sub.add_parser("tables", help="regenerate docs/results.md (Tables I, II and the literature table)")
    tables.add_argument("--shared", default="../shared", help="folder holding data/eval (default ../shared)")
    tables.add_argument("--out", default="docs/results.md", help="Markdown file to write (default docs/results.md)")
    tables.add_argument("--work", default="results/tables", help="folder for the per-image CSVs")
    tables.add_argument("--limit", type=int, help="only the first N images of each set (a quick check)")
    tables.add_argument("--bench-only", action="store_true", help="only rebuild the benchmark section from docs/bench/*.json")
    tables.add_argument("--only", choices=["table1", "table2", "literature"],
                        help="re-evaluate one section and keep the rest of --out as it is (e.g. after shipping one model)")
    tables.add_argument("-q", "--quiet", action="store_true")
    tables.set_defaults(func=cmd_tables)

    bench = sub.add_parser("bench", help="seconds per frame for each encoder, backend and frame size, side by side")
    bench.add_argument("--encoders", help="comma list (default: mobilenetv3_small_100,mobilenetv3_large_100,resnet34)")
    bench.add_argument("--decoders", help="comma list of full (DeOldify's layout) and light (default: both)")
    bench.add_argument("--sizes", default="640x360,1280x720,1920x1080", help="comma list of WxH (default 640x360,1280x720,1920x1080)")
    bench.add_argument("--backends", help="comma list of torch, torch-bf16, onnxruntime (default: all available)")
    bench.add_argument("--width", type=int, default=32, help="decoder width, the same for every encoder (default 32, as shipped)")
    bench.add_argument("--runs", type=int, default=3, help="timed runs per configuration, after one warm-up (default 3)")
    bench.add_argument("--tile", type=int, default=VIDEO_TILE, help=f"tile size (default {VIDEO_TILE}, as revamp video; revamp image uses {TILE})")
    bench.add_argument("--json", help="also write the results to this JSON file")
    bench.add_argument("-q", "--quiet", action="store_true")
    bench.set_defaults(func=cmd_bench)

    export = sub.add_parser("export", help="export a model for other runtimes")
    esub = export.add_subparsers(dest="format", required=True)
    onnx = esub.add_parser("onnx", help="ONNX (dynamic batch, height and width), checked against torch with onnxruntime")
    onnx.add_argument("--model", default="default", help="shipped model name or .safetensors file")
    onnx.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    onnx.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    onnx.add_argument("--check", metavar="IMAGE", help="compare torch and onnxruntime on this image (default: a synthetic picture)")
    onnx.set_defaults(func=cmd_export)

    study = sub.add_parser("study", help="blind image-quality studies: create, serve to raters, report")
    ssub = study.add_subparsers(dest="action", required=True)
    create = ssub.add_parser("create", help="a study over restored outputs of two or more methods")
    create.add_argument("--name", required=True, help="study name")
    create.add_argument("--images", required=True, help="folder whose images (by file name) are the study's items, e.g. the inputs")
    create.add_argument("--method", action="append", default=[], metavar="LABEL=DIR", help="a method's outputs (same file names); repeat")
    create.add_argument("--model", action="append", default=[], help="restore the images with this model first and add it as a method; repeat")
    create.add_argument("--reference", help="folder of reference images shown beside the versions (optional)")
    create.add_argument("--db", default="study.sqlite", help="SQLite database (default study.sqlite)")
    create.set_defaults(func=cmd_study)
    serve = ssub.add_parser("serve", help="serve the rating page")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    serve.add_argument("--db", default="study.sqlite")
    serve.add_argument("--admin-password", help="enables GET /api/results with header X-Admin-Password")
    serve.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                       help="a host name raters use for this machine (localhost, its own names and IP addresses are always "
                            "allowed; other names are refused, against DNS rebinding); repeat")
    serve.set_defaults(func=cmd_study)
    rep = ssub.add_parser("report", help="MOS with 95%% CIs, a Fig. 3-style chart (PNG, SVG), CSVs, rater agreement")
    rep.add_argument("study", help="study name")
    rep.add_argument("--db", default="study.sqlite")
    rep.add_argument("-o", "--out", default="study-report", help="output folder (default study-report/)")
    rep.set_defaults(func=cmd_study)

    demo = sub.add_parser("demo", help="restore the bundled samples and write a before/after page")
    demo.add_argument("--input", default="samples", help="folder of compressed pictures (default samples/)")
    demo.add_argument("-o", "--output", default="demo", help="output folder (default demo/)")
    _add_inference_options(demo)
    demo.set_defaults(func=cmd_demo)

    train = sub.add_parser("train", help="train models (NoGAN stages)")
    tsub = train.add_subparsers(dest="stage", required=True)
    for stage, text in [("generator", "stage 1: pre-train the generator"), ("critic", "stage 2: pre-train the critic on the generator's outputs"),
                        ("gan", "stage 3: short GAN phase"), ("all", "the three stages in order")]:
        st = tsub.add_parser(stage, help=text)
        st.add_argument("--config", required=True, help="YAML config (see configs/)")
        st.add_argument("-o", "--run-dir", dest="run", required=True, metavar="RUN", help="run folder; each stage writes to RUN/<stage>/")
        st.add_argument("--resume", action="store_true", help="continue from the checkpoints in the run folder")
        st.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value, e.g. data.workers=4")
        st.set_defaults(func=cmd_train)
    plot = tsub.add_parser("plot", help="loss and validation curves of a run as a PNG")
    plot.add_argument("run", help="run folder (or one stage's folder)")
    plot.add_argument("-o", "--out", help="PNG file (default RUN/curves.png)")
    plot.set_defaults(func=cmd_train_plot)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # busy-waiting threads slow everything else down
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "tile_overlap", 0) and args.tile - args.tile_overlap < 32:  # tiles must advance (revamp.inference.tiling)
        parser.error(f"--tile-overlap {args.tile_overlap} must be at most --tile minus 32 ({args.tile - 32})")
    try:
        return args.func(args)
    except CliError as exc:
        print(f"revamp: error: {exc}", file=sys.stderr)
        return 1
    except ImportError as exc:  # an optional extra (revamp.runtime.need) or the training dependencies
        from revamp.runtime import DISTRIBUTION, MissingExtra

        hint = "" if isinstance(exc, MissingExtra) else f" (training and evaluation: pip install '{DISTRIBUTION}[train]')"
        print(f"revamp: error: {exc}{hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("revamp: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        if os.environ.get("REVAMP_DEBUG"):
            raise
        msg = " ".join(str(exc).split()) or type(exc).__name__
        print(f"revamp: error: {msg} (set REVAMP_DEBUG=1 for a traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
