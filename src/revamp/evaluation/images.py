"""`revamp eval`: degrade a folder of clean images, restore them, measure against the originals.

Conventions (those of the deblocking literature): JPEG made with libjpeg
through PIL (IJG quality, 4:2:0 for colour), 8-bit rounding of every output,
PSNR/SSIM/PSNR-B on RGB or on BT.601 Y (``--channel``), no border crop unless
``--crop``. Grayscale datasets are compressed and measured as one channel.
"""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from revamp.data.degrade import REENCODE_QP, RESAVE_QUALITY, bicubic_up, frame_step, make_input
from revamp.imageio import INPUT_SUFFIXES, read_dataset_image
from revamp.metrics import edge_mask, edge_psnr, psnr, psnr_b, ssim


def _lpips(restored, reference, channel: str = "rgb", crop: int = 0) -> float:
    """LPIPS-alex v0.1 on the RGB images (the channel setting does not apply to it)."""
    from revamp.metrics.lpips import lpips

    if crop:
        restored, reference = restored[crop:-crop, crop:-crop], reference[crop:-crop, crop:-crop]
    return lpips(restored, reference, "alex")


def _edge_lpips(restored, reference, channel: str = "rgb", crop: int = 0) -> float:
    """LPIPS-alex's per-pixel distance over the reference's edge region (metrics.edge_mask, found
    before the crop as edge-psnr's), RGB."""
    from revamp.metrics.lpips import masked_lpips

    mask = edge_mask(reference)
    if crop:
        restored, reference, mask = (x[crop:-crop, crop:-crop] for x in (restored, reference, mask))
    return masked_lpips(restored, reference, mask)


def _niqe(restored, reference=None, channel: str = "rgb", crop: int = 0) -> float:
    """No-reference: the reference is ignored."""
    from revamp.metrics.niqe import niqe

    return niqe(restored, crop=crop)


def _brisque(restored, reference=None, channel: str = "rgb", crop: int = 0) -> float:
    """No-reference: the reference is ignored."""
    from revamp.metrics.brisque import brisque

    return brisque(restored, crop=crop)


METRICS = {"psnr": psnr, "ssim": ssim, "psnr-b": psnr_b, "lpips": _lpips, "edge-psnr": edge_psnr, "edge-lpips": _edge_lpips,
           "niqe": _niqe, "brisque": _brisque}
NO_REFERENCE = {"niqe", "brisque"}
TARGET = "Target (originals)"


QUANTISER_RANGE = {"jpeg": (1, 100), "h264": (0, 51), "h265": (0, 51), "mpeg2": (1, 31), "mpeg4": (1, 31),
                   "jpeg-resaved": (1, 100), "h264-reencoded": (0, 51)}


def parse_degradations(specs: list[str]) -> list[tuple[str, int]]:
    """``jpeg:10,20`` (IJG quality), ``h264:qp37``/``h265:32,37`` (QP), ``mpeg2:8``/``mpeg4:8`` (qscale);
    ``jpeg-resaved:Q`` and ``h264-reencoded:QP`` are damaged at Q/QP, then saved again more lightly."""
    out = []
    for spec in specs:
        kind, _, values = spec.partition(":")
        if kind not in QUANTISER_RANGE or not values:
            raise ValueError(f"bad --degrade {spec!r}: use jpeg:Q[,Q...] (e.g. jpeg:10,20,30,40), h264:qp37, h265:qp32,37, mpeg2:8, "
                             "mpeg4:8, jpeg-resaved:Q or h264-reencoded:QP")
        lo, hi = QUANTISER_RANGE[kind]
        for v in values.split(","):
            q = int(v.removeprefix("qp"))
            if not lo <= q <= hi:
                raise ValueError(f"{kind} quantiser must be {lo}..{hi}, got {q}")
            out.append((kind, q))
    return out


def file_hint(kind: str, q: int, height: int, width: int):
    """What the compressed file would tell a codec-aware model: the JPEG tables, or the quantiser of
    the intra frame."""
    from revamp.codec import CodecHint, ijg_table, jpeg_step

    if kind in ("jpeg", "jpeg-resaved"):
        told = q if kind == "jpeg" else RESAVE_QUALITY
        return CodecHint.constant(jpeg_step(ijg_table(told)), height, width, "JPEG tables")
    if kind == "h264-reencoded":
        return CodecHint.constant(frame_step("h264", REENCODE_QP, "I"), height, width, "h264 quantiser")
    return CodecHint.constant(frame_step(kind, q, "I"), height, width, f"{kind} quantiser")


def load_clean(path: Path, gray: bool = False) -> np.ndarray:
    """A reference image as uint8; ``gray`` turns colour into rounded BT.601 Y (16..235), which is
    how the grayscale test sets of the deblocking literature (e.g. LIVE1 gray) were made."""
    rgb = read_dataset_image(path, keep_gray=True)
    if rgb.ndim == 2:
        return rgb
    if gray:
        from revamp.metrics import rgb_to_y

        return np.round(rgb_to_y(rgb)).astype(np.uint8)
    return rgb


def _readable(files: list[Path], gray: bool, notes: list[str], quiet: bool) -> list[Path]:
    """The reference files that decode; each one that does not is skipped, said, and noted in the summary."""
    good = []
    for path in files:
        try:
            load_clean(path, gray)
            good.append(path)
        except (OSError, SyntaxError, ValueError) as exc:  # PIL's errors for damaged or unknown files
            reason = " ".join(str(exc).split()) or type(exc).__name__
            notes.append(f"Skipped {path.name}: it does not decode ({reason}).")
            if not quiet:
                tqdm.write(f"revamp: warning: {path}: skipped, it does not decode ({reason})", file=sys.stderr)
    return good


TUNE_IMAGES = 6  # the classical baseline's qp is tuned on the first images of the set


def baseline_qps(files: list[Path], degradations, baseline: str, channel: str, crop: int, notes: list[str], gray: bool = False) -> dict:
    """qp of the classical filter for each quality, tuned for PSNR on the first TUNE_IMAGES images."""
    from revamp.evaluation import baselines

    if baselines.ffmpeg_binary() is None:
        notes.append(f"The FFmpeg {baseline} row is left out: the system ffmpeg binary is not installed (Debian package ffmpeg).")
        return {}
    qps = {}
    for kind, q in degradations:
        pairs = [tuple(reversed(make_input(load_clean(f, gray), q, 1, kind))) for f in files[:TUNE_IMAGES]]
        qps[(kind, q)] = baselines.tune_qp(pairs, baseline, lambda a, b: psnr(a, b, channel=channel, crop=crop))
    notes.append(f"FFmpeg {baseline}: system ffmpeg, qp chosen per quality from {list(baselines.QP_GRID)} for the best mean PSNR "
                 f"on the first {TUNE_IMAGES} images of this set (an optimistic baseline): "
                 + ", ".join(f"{kind}:{q}: qp {qp}" for (kind, q), qp in qps.items()) + ".")
    return qps


def evaluate(models: dict[str, object], data: Path, degradations: list[tuple[str, int]], metrics: list[str],
             channel: str, crop: int, out: Path, quiet: bool = False, scale: int = 1, baseline: str = "spp",
             html: bool = False, gray: bool = False, limit: int | None = None) -> dict:
    files = sorted(p for p in data.iterdir() if p.suffix.lower() in INPUT_SUFFIXES)[:limit]
    unknown = set(metrics) - set(METRICS)
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(sorted(unknown))}; available: {', '.join(METRICS)}")
    notes: list[str] = []
    files = _readable(files, gray, notes, quiet)
    if not files:
        raise ValueError(f"no readable images in {data}")
    qps = baseline_qps(files, degradations, baseline, channel, crop, notes, gray) if scale == 1 and baseline != "none" else {}
    rows = []
    report = None
    if html:
        from revamp.evaluation.report import VisualReport

        report = VisualReport(out, f"Data {data}, scale x{scale}; gain = PSNR of the last model minus the input's.")
    total = len(files) * len(degradations)
    bar = tqdm(total=total, desc="evaluating", unit="img", disable=quiet, dynamic_ncols=True)
    for path in files:
        original = load_clean(path, gray)
        for kind, q in degradations:
            clean, degraded = make_input(original, q, scale, kind)
            label = "JPEG" if kind == "jpeg" else kind.upper()
            outputs = {f"{label} (input)": degraded} if scale == 1 else {f"bicubic x{scale} of the {label}": bicubic_up(degraded, scale)}
            if (kind, q) in qps:
                from revamp.evaluation.baselines import deblock

                outputs[f"FFmpeg {baseline}"] = deblock(degraded, baseline, qps[(kind, q)])
            for name, restorer in models.items():
                if restorer.scale != scale:
                    raise ValueError(f"model {name} is x{restorer.scale}, the evaluation is x{scale}")
                outputs[name] = restorer.restore(degraded, hint=file_hint(kind, q, degraded.shape[0], degraded.shape[1]))
            if NO_REFERENCE & set(metrics):
                outputs[TARGET] = clean  # the paper's "Target" row: no-reference scores of the originals
            for method, img in outputs.items():
                row = {"image": path.name, "degradation": f"{kind}:{q}", "method": method}
                for m in metrics:
                    skip = method == TARGET and m not in NO_REFERENCE
                    row[m] = float("nan") if skip else round(METRICS[m](img, clean, channel=channel, crop=crop), 4)
                rows.append(row)
            if report is not None:
                scores = {m: psnr(img, clean, channel=channel, crop=crop) for m, img in outputs.items() if m != TARGET}
                report.add(path.name, f"{kind}:{q}", clean, {m: img for m, img in outputs.items() if m != TARGET}, scores)
            bar.update(1)
    bar.close()
    out.mkdir(parents=True, exist_ok=True)
    with (out / "per_image.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    summary: dict = {"data": str(data), "images": len(files), "gray": gray, "scale": scale, "channel": channel, "crop": crop, "metrics": metrics, "notes": notes, "results": []}
    for kind, q in degradations:
        methods = list(dict.fromkeys(r["method"] for r in rows if r["degradation"] == f"{kind}:{q}"))
        for method in methods:
            sel = [r for r in rows if r["method"] == method and r["degradation"] == f"{kind}:{q}"]
            if sel:
                means = {m: float(np.mean([r[m] for r in sel])) for m in metrics}
                summary["results"].append({"degradation": f"{kind}:{q}", "method": method,
                                           **{m: None if np.isnan(v) else round(v, 4) for m, v in means.items()}})
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    if report is not None:
        summary["html"] = str(report.write())
    (out / "summary.md").write_text(summary_markdown(summary))
    return summary


def _cell(value: float, metric: str) -> str:
    if value is None:  # not applicable: a full-reference metric on the originals
        return "–"
    return f"{value:.4f}" if metric in ("ssim", "lpips", "edge-lpips") else f"{value:.2f}"


def summary_markdown(summary: dict) -> str:
    metrics = summary["metrics"]
    lines = [
        f"Data: `{summary['data']}` ({summary['images']} images), scale x{summary.get('scale', 1)}, channel {summary['channel'].upper()}, "
        f"border crop {summary['crop']} px.",
        "",
        "| degradation | method | " + " | ".join(metrics) + " |",
        "|---|---|" + "---|" * len(metrics),
    ]
    for r in summary["results"]:
        lines.append(f"| {r['degradation']} | {r['method']} | " + " | ".join(_cell(r[m], m) for m in metrics) + " |")
    lines += [""] + [f"- {n}" for n in summary.get("notes", [])]
    return "\n".join(lines) + "\n"
