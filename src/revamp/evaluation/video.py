"""`revamp eval --video`: clean clips compressed with H.264/H.265 at a constant QP, restored, and
measured as the compressed-video papers do (MFQE, STDF, RFDA): ΔPSNR and ΔSSIM on the Y plane
(no crop, mean over frames) against the compressed input, plus the temporal metrics (warping
error, tOF, tLP, on RGB) that show flicker. The Y planes are the files' own: the compressed
input's as decoded, every other row's as `revamp video` writes it losslessly (BT.601, limited
range, yuv420p); the reference is BT.601 Y of the original RGB frames. Y computed from the
compressed input's 8-bit RGB as FFmpeg's fast conversion makes it (swscale as PyAV calls it)
sits up to 0.32 dB lower on Vid4 (H.264 QP27 0.14, QP37 0.01; H.265 QP27 0.32, QP37 0.06): that
RGB is 1-1.5 levels too dark and coarsely rounded, which a model trained on such frames undoes,
and which would be counted as its gain.

Rows: the compressed input; FFmpeg's `deblock` filter (in the av wheel's FFmpeg, default
settings, on the YUV 4:4:4 version of each frame); FFmpeg's `spp` (system ffmpeg, qp tuned on
the clip's first frames: optimistic); each model frame by frame, and each model with the
temporal stabiliser. Each model is given the compressed frames in RGB as `revamp video` gives them
to it: converted exactly, or, for a model trained on FFmpeg's fast conversion, by that conversion
(revamp.models.files.exact_video_rgb).
"""
from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from tqdm import tqdm

from revamp.codec import BLIND, CodecHint
from revamp.data.degrade import REENCODE_QP, VIDEO_CODECS, video_roundtrip
from revamp.imageio import INPUT_SUFFIXES, read_dataset_image
from revamp.metrics import psnr, rgb_to_y, ssim
from revamp.metrics.temporal import reference_flows, tlp, tof, warping_error
from revamp.video.flow import Warps
from revamp.video.io import RANGE_LIMITED, SPACE_SMPTE170M, VideoInfo, decoded_rgb, filter_graph, frame_to_rgb, rgb_to_frame
from revamp.video.job import restore_sequence
from revamp.video.neighbours import neighbour_planes
from revamp.video.stabilize import LOOK_AHEAD, TemporalStabilizer

VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".avi", ".m2ts", ".ts", ".mpg", ".webm", ".y4m"}
METRICS = ("psnr_y", "ssim_y", "warp_error", "tof", "tlp")


def load_clips(data: Path, max_frames: int) -> dict[str, list[np.ndarray]]:
    """Video files anywhere under ``data``, and folders of numbered frame images; frames cropped to even sizes."""
    clips: dict[str, list[np.ndarray]] = {}
    for path in sorted(data.rglob("*")):
        if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
            with av.open(str(path)) as c:
                frames = []
                for f in c.decode(video=0):
                    frames.append(frame_to_rgb(f))
                    if len(frames) == max_frames:
                        break
            clips[path.stem] = frames
        elif path.is_dir():
            stills = sorted(p for p in path.iterdir() if p.suffix.lower() in INPUT_SUFFIXES)[:max_frames]
            if len(stills) >= 2:
                clips[path.name] = [read_dataset_image(p) for p in stills]
    if not clips:
        raise ValueError(f"no video files or frame folders in {data}")
    return {name: [f[: f.shape[0] // 2 * 2, : f.shape[1] // 2 * 2] for f in frames] for name, frames in clips.items()}


def ffmpeg_deblock(frames: list[np.ndarray]) -> list[np.ndarray]:
    """FFmpeg's `deblock` filter (default strong filter, 8x8 blocks) through a PyAV filter graph."""
    h, w = frames[0].shape[:2]
    graph = filter_graph("deblock", "filter=strong:block=8", width=w, height=h, format="yuv444p", time_base="1/25")
    out = []
    for i, rgb in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv444p", threads=1)
        frame.pts = i
        graph.push(frame)
        out.append(decoded_rgb(graph.pull(), SPACE_SMPTE170M, RANGE_LIMITED))  # the matrix of the reformat above
    return out


def ffmpeg_spp(frames: list[np.ndarray], refs: list[np.ndarray]) -> tuple[list[np.ndarray], int]:
    from revamp.evaluation import baselines

    tune = list(zip(frames[:4], refs[:4]))
    qp = baselines.tune_qp(tune, "spp", lambda a, b: psnr(a, b, channel="y"))
    return [baselines.deblock(f, "spp", qp) for f in frames], qp


def restore_clip(restorer, frames: list[np.ndarray], mix: float, hints: list[CodecHint] | None = None,
                 kind: str | None = None, look_ahead: int = LOOK_AHEAD) -> list[np.ndarray]:
    """A clip restored as `revamp video` does (multi-frame models see their neighbours); ``kind``:
    the codec the clip went through (revamp.data.degrade.VIDEO_CODECS)."""
    warps = Warps() if restorer.neighbours else None  # shared by the neighbours and the stabiliser, as in `revamp video`
    stabilizer = TemporalStabilizer(mix, scale=restorer.scale, look_ahead=look_ahead, warps=warps) if mix else None
    hints = hints or [BLIND] * len(frames)
    codec = VIDEO_CODECS[kind][1] if kind in VIDEO_CODECS else None
    items = ((rgb, hint, planes, None) for rgb, hint, planes in zip(frames, hints, clip_neighbours(restorer, frames, hints, warps)))
    return [out for out, _ in restore_sequence(restorer, items, stabilizer, codec=codec)]


def clip_neighbours(restorer, frames: list[np.ndarray], hints: list[CodecHint], warps: Warps | None = None) -> Iterator[np.ndarray | None]:
    """Each frame's aligned neighbour planes, one at a time, as `revamp video` gives them to a
    multi-frame model (None for a single-frame model); ``warps``: the clip's (a new one if None)."""
    n = restorer.neighbours
    warps = (warps or Warps()) if n else None
    steps = [hint.mean_step for hint in hints]
    for i in range(len(frames)):
        yield neighbour_planes(frames, i, restorer.config, warps, steps, hints[i].codec) if n else None


def clip_hints(kind: str, steps: list[float], height: int, width: int) -> list[CodecHint]:
    """What `revamp video` reads from such a file: every frame's quantiser (the maps FFmpeg exports
    for H.264, MPEG-2 and MPEG-4; HEVC's slice QPs)."""
    codec = "h264" if kind == "h264-reencoded" else kind
    return [CodecHint.constant(step, height, width, f"{kind} quantiser", codec) for step in steps]


# How `revamp video` writes an SD frame of a BT.601 file (the metric's Y is BT.601 too).
BT601 = VideoInfo(time_base=Fraction(1, 25), rate=Fraction(25), frames=0, duration_s=None, colorspace=SPACE_SMPTE170M,
                  color_range=RANGE_LIMITED, color_primaries=6, color_trc=6, sample_aspect_ratio=None, rotation=0)


def written_luma(frames: list[np.ndarray]) -> list[np.ndarray]:
    """The Y planes of uint8 RGB frames as `revamp video` writes them losslessly."""
    return [rgb_to_frame(f, "yuv420p", BT601).to_ndarray()[: f.shape[0]] for f in frames]


def measure(outputs: list[np.ndarray], refs: list[np.ndarray], flows, luma: list[np.ndarray] | None = None) -> dict[str, float]:
    """``luma``: the outputs' Y planes (default: as written, ``written_luma``)."""
    planes = [p.astype(np.float64) for p in (luma if luma is not None else written_luma(outputs))]
    ref_y = [rgb_to_y(r) for r in refs]
    return {
        "psnr_y": float(np.mean([psnr(p, r) for p, r in zip(planes, ref_y)])),
        "ssim_y": float(np.mean([ssim(p, r) for p, r in zip(planes, ref_y)])),
        "warp_error": warping_error(outputs, refs, flows),
        "tof": tof(outputs, refs, flows),
        "tlp": tlp(outputs, refs),
    }


def evaluate_video(models: dict[str, object], data: Path, degradations: list[tuple[str, int]], out: Path,
                   stabilize: float | None = None, max_frames: int = 60, baseline: str = "spp", quiet: bool = False) -> dict:
    from revamp.evaluation import baselines

    for kind, _ in degradations:
        if kind not in ("h264", "h265", "mpeg2", "mpeg4", "h264-reencoded"):
            raise ValueError(f"--video measures video codecs, not {kind}")
    clips = load_clips(data, max_frames)
    notes = []
    use_spp = baseline == "spp" and baselines.ffmpeg_binary() is not None
    if baseline == "spp" and not use_spp:
        notes.append("The FFmpeg spp row is left out: the system ffmpeg binary is not installed (Debian package ffmpeg).")
    rows = []
    jobs = [(name, kind, q) for name in clips for kind, q in degradations]
    for name, kind, q in tqdm(jobs, desc="clips", disable=quiet):
        refs = clips[name]
        steps: list[float] = []
        luma: list[np.ndarray] = []
        fast: list[np.ndarray] = []  # the same frames as models trained on FFmpeg's fast conversion are given them
        if kind == "h264-reencoded":  # damaged at QP q, then re-encoded lightly: the file tells QP 22
            compressed = video_roundtrip(video_roundtrip(refs, "h264", q), "h264", REENCODE_QP, steps=steps, luma=luma, fast=fast)
        else:
            compressed = video_roundtrip(refs, kind, q, steps=steps, luma=luma, fast=fast)
        hints = clip_hints(kind, steps, *refs[0].shape[:2])
        encoded_as = "h264" if kind == "h264-reencoded" else kind  # what the stabiliser's tolerance reads
        flows = reference_flows(refs)
        methods = {"compressed": compressed, "ffmpeg deblock": ffmpeg_deblock(compressed)}
        if use_spp:
            methods["ffmpeg spp"], qp = ffmpeg_spp(compressed, refs)
            notes.append(f"{name} {kind} QP{q}: spp qp {qp}")
        for label, restorer in models.items():
            given = compressed if restorer.exact_video_rgb else fast
            methods[label] = restore_clip(restorer, given, 0.0, hints)
            mix = restorer.stabilize if stabilize is None else stabilize
            if mix:
                methods[f"{label} + stabiliser {mix:g}"] = restore_clip(restorer, given, mix, hints, encoded_as)
        for method, frames in methods.items():
            rows.append({"clip": name, "frames": len(refs), "size": f"{refs[0].shape[1]}x{refs[0].shape[0]}",
                         "degradation": f"{kind} QP{q}" if kind.startswith(("h264", "h265")) else f"{kind} q{q}",
                         "method": method, **measure(frames, refs, flows, luma if method == "compressed" else None)})
    summary = _summarise(rows, notes)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "per_clip.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    (out / "summary.md").write_text(video_markdown(summary))
    return summary


def _summarise(rows: list[dict], notes: list[str]) -> dict:
    table = []
    for degradation in dict.fromkeys(r["degradation"] for r in rows):
        base = {m: np.mean([r[m] for r in rows if r["degradation"] == degradation and r["method"] == "compressed"]) for m in METRICS}
        for method in dict.fromkeys(r["method"] for r in rows):
            sel = [r for r in rows if r["degradation"] == degradation and r["method"] == method]
            mean = {m: float(np.mean([r[m] for r in sel])) for m in METRICS}
            table.append({"degradation": degradation, "method": method, **mean,
                          "delta_psnr_y": mean["psnr_y"] - base["psnr_y"], "delta_ssim_y": mean["ssim_y"] - base["ssim_y"]})
    clips = sorted({(r["clip"], r["size"], r["frames"]) for r in rows})
    return {"rows": table, "clips": [{"name": c, "size": s, "frames": n} for c, s, n in clips], "notes": notes}


def video_markdown(summary: dict) -> str:
    lines = ["| degradation | method | PSNR-Y (dB) | ΔPSNR-Y | SSIM-Y | ΔSSIM-Y | warping error (x1000) | tOF | tLP |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in summary["rows"]:
        lines.append(f"| {r['degradation']} | {r['method']} | {r['psnr_y']:.2f} | {r['delta_psnr_y']:+.2f} | {r['ssim_y']:.4f} | "
                     f"{r['delta_ssim_y']:+.4f} | {r['warp_error']:.3f} | {r['tof']:.3f} | {r['tlp']:.4f} |")
    clips = ", ".join(f"{c['name']} ({c['size']}, {c['frames']} frames)" for c in summary["clips"])
    lines += ["", f"Clips: {clips}. Means over clips; PSNR/SSIM on BT.601 Y, no border crop, mean over frames."]
    lines += [f"- {n}" for n in summary["notes"]]
    return "\n".join(lines) + "\n"
