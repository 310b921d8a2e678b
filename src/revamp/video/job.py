"""`revamp video`: restore a video file, resumably.

The job decodes every frame, restores it (tiled when large), stabilises it against the previous
one and encodes it into segment files of ``segment_frames`` frames in a work folder beside the
output (``.NAME.revamp-work/``). Each finished segment is renamed into place, so an interrupted
job resumes at the first unfinished segment; the stabiliser restarts at every segment boundary,
which makes a resumed job produce exactly the frames of an uninterrupted one. At the end the
segments' packets and every audio and subtitle packet of the input (copied, not re-encoded) are
interleaved into a temporary file that is renamed to the output.
"""
from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import os
import shutil
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from tqdm import tqdm

from revamp.codec import BLIND, VIDEO_CODEC_NAMES, CodecHint, h26x_step, hint_for_video_frame
from revamp.defaults import BLIND_VIDEO_STRENGTH, VIDEO_HINT_SCALE
from revamp.video.flow import Warps
from revamp.video.io import (
    CODECS,
    PIPE,
    DecodeReport,
    VideoError,
    VideoInfo,
    check_output,
    decode_frames,
    describe,
    frame_to_rgb,
    open_encoder_stream,
    open_input,
    open_pipe_input,
    open_y4m_output,
    output_crf,
    probe,
    rgb_to_frame,
)
from revamp.video.neighbours import neighbour_planes
from revamp.video.stabilize import TemporalStabilizer, blend_tolerance

COPIED_STREAM_TYPES = ("audio", "subtitle")


@dataclass
class VideoOptions:
    codec: str = "h264"
    quality: int | None = None  # CRF for h264/h265; None: from the input's quantisers (revamp.video.io.output_crf)
    deinterlace: str | None = None  # None, "bwdif" or "yadif"
    stabilize: float | None = None  # the stabiliser's mix (revamp.video.stabilize); None: the model's (Restorer.stabilize); 0: off
    segment_frames: int = 240


@dataclass
class VideoReport:
    frames: int = 0
    restored_frames: int = 0  # frames restored in this run (fewer when resuming)
    copied_streams: list[str] = field(default_factory=list)
    damage: str | None = None
    notes: list[str] = field(default_factory=list)  # what the output does not keep of the input (VideoInfo.notes)


def _job_signature(src: Path, restorer, options: VideoOptions) -> dict:
    st = src.stat()
    digest = hashlib.sha256(restorer.model_path.read_bytes()).hexdigest()[:16]
    return {"input": str(src.resolve()), "input_size": st.st_size, "input_mtime_ns": st.st_mtime_ns, "model_sha256": digest,
            "strength": restorer.strength, "ensemble": restorer.ensemble, **asdict(options)}


def _prepare_work_dir(work: Path, signature: dict, resume: bool) -> None:
    job_file = work / "job.json"
    if work.exists():
        previous = json.loads(job_file.read_text()) if job_file.is_file() else None
        if resume and previous == signature:
            return
        if resume and previous is not None:
            changed = sorted(k for k in signature if previous.get(k) != signature[k])
            raise VideoError(f"cannot resume: {', '.join(changed)} changed since the job started (drop --resume to start over)")
        shutil.rmtree(work)  # our own leftovers from an earlier, different job
    work.mkdir(parents=True)
    job_file.write_text(json.dumps(signature, indent=1))


def _segment_path(work: Path, index: int) -> Path:
    return work / f"segment-{index:06d}.seg"


def _segment_format(codec: str) -> str:
    """NUT keeps any time base exactly; it cannot hold ProRes, which MOV does (intra-only, so
    MOV's lack of negative decoding timestamps does not matter)."""
    return "mov" if codec == "prores" else "nut"


class _SegmentWriter:
    """Encodes frames into one segment file, renamed into place when complete."""

    def __init__(self, path: Path, options: VideoOptions, info: VideoInfo, width: int, height: int):
        self.path, self.tmp = path, path.with_suffix(".part")
        self.container = av.open(str(self.tmp), "w", format=_segment_format(options.codec))
        self.stream = open_encoder_stream(self.container, options.codec, options.quality, info, width, height)
        self.pix_fmt, self.info, self.width, self.height = CODECS[options.codec][1], info, width, height
        self.first_pts: int | None = None
        self.frames = 0

    def write(self, rgb: np.ndarray, pts: int, duration: int | None) -> None:
        if self.first_pts is None:
            self.first_pts = pts
        self.frames += 1
        frame = rgb_to_frame(rgb[: self.height, : self.width], self.pix_fmt, self.info)  # odd sizes: even (VideoInfo.notes)
        frame.pts, frame.time_base = pts, self.info.time_base
        if duration:
            frame.duration = duration
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self) -> None:
        for packet in self.stream.encode(None):
            self.container.mux(packet)
        self.container.close()
        # The muxer may shift timestamps to avoid negative dts; the first pts undoes that shift.
        self.path.with_suffix(".json").write_text(json.dumps({"first_pts": self.first_pts, "frames": self.frames}))
        os.replace(self.tmp, self.path)


def restore_sequence(restorer, items: Iterable[tuple], stabilizer: TemporalStabilizer | None, helper: ThreadPoolExecutor | None = None,
                   codec: str | None = None) -> Iterator[tuple[np.ndarray, object]]:
    """Decoded frames -> their restored (and stabilised) uint8 RGB frames, in order. ``items``:
    (uint8 RGB frame, CodecHint, neighbour planes or None, anything handed back with the frame);
    the hint gives the model (``restore_video_frame``) and the stabiliser's tolerance the frame's
    quantisers (``codec``: FFmpeg's decoder name; video frames are never run through the JPEG
    estimator); the planes are multi-frame models' aligned neighbours (revamp.video.neighbours).
    ``helper``: a thread that measures the stabiliser's motion while the network runs (between
    its convolutions the network leaves cores idle). The stabiliser hands frames back
    ``look_ahead`` frames late; all of them come out by the end of ``items``."""
    for rgb, hint, neighbours, item in items:
        tolerance = blend_tolerance(codec, hint) if stabilizer else None
        motion = helper.submit(stabilizer.measure, rgb, tolerance) if stabilizer and helper else None
        restored = restore_video_frame(restorer, rgb, hint, neighbours)
        if not stabilizer:
            yield _to_uint8(restored), item
            continue
        for out, done in stabilizer.push(restored, motion.result() if motion else stabilizer.measure(rgb, tolerance), item):
            yield _to_uint8(out), done
    for out, done in stabilizer.flush() if stabilizer else ():
        yield _to_uint8(out), done


def _temporal(restorer, mix: float | None) -> tuple[TemporalStabilizer | None, Warps | None]:
    """The stabiliser at ``mix`` (None: the model's, Restorer.stabilize; 0: none), and for a
    multi-frame model the Warps its neighbours are aligned with, which the stabiliser shares."""
    mix = restorer.stabilize if mix is None else mix
    warps = Warps() if restorer.neighbours else None
    return (TemporalStabilizer(mix, scale=restorer.scale, warps=warps) if mix else None), warps


def restore_video_frame(restorer, rgb: np.ndarray, hint: CodecHint, neighbours: np.ndarray | None = None) -> np.ndarray:
    """One decoded video frame (uint8 RGB) -> its float32 restoration. A codec-aware model is told
    a share of the frame's quantiser steps (Restorer.hint_scales for H.264 and H.265, else
    revamp.defaults.VIDEO_HINT_SCALE), and of a frame with none (blind) its correction is kept at
    BLIND_VIDEO_STRENGTH: on natural video the models over-correct at the step the file reports
    (docs/codec.md). The quantisers of a codec the model learnt blind are withheld."""
    if hint.codec in restorer.blind_codecs:
        hint = BLIND
    frame = rgb.astype(np.float32) / 255
    scale = restorer.hint_scales.get(hint.codec, VIDEO_HINT_SCALE)
    restored = restorer.restore_rgb(frame, hint=hint.scaled(scale), neighbours=neighbours)
    if hint.steps is not None or not restorer.codec_aware or restorer.scale != 1 or np.shares_memory(frame, restored):
        return restored
    restored -= frame  # frame + BLIND_VIDEO_STRENGTH * (restored - frame), in restored's memory
    restored *= BLIND_VIDEO_STRENGTH
    restored += frame
    return restored


def _to_uint8(rgb: np.ndarray) -> np.ndarray:
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)


def _decoded_item(frame: av.VideoFrame, context: list | None, info: VideoInfo, codec: str, restorer, warps: Warps | None, item) -> tuple:
    """A decoded frame (``context``: its window from _with_context of (RGB, hint) pairs, multi-frame
    models) as restore_sequence takes it, with the quantisers the decoder exported, as both
    `revamp video` paths restore it."""
    n = restorer.neighbours
    if not n:
        return frame_to_rgb(frame, info, restorer.exact_video_rgb), hint_for_video_frame(frame, codec), None, item
    rgbs = [c[0] if c else None for c in context]
    steps = [c[1].mean_step if c else None for c in context]
    hint = context[n][1]
    return rgbs[n], hint, neighbour_planes(rgbs, n, restorer.config, warps, steps, hint.codec), item


def _rgb_and_hint(info: VideoInfo, codec: str, exact: bool):
    """What _with_context keeps of each decoded frame for multi-frame models."""
    return lambda frame: (frame_to_rgb(frame, info, exact), hint_for_video_frame(frame, codec))


def _output_size(frame: av.VideoFrame, scale: int) -> tuple[int, int]:
    """(width, height) written for a frame: scaled, and even, as 4:2:0 needs (VideoInfo.notes)."""
    return frame.width // 2 * 2 * scale, frame.height // 2 * 2 * scale


def _next_pts(pts: int | None, last: int | None, step: int) -> int:
    """A frame's timestamp, made up (one frame duration on) where it has none and kept strictly
    increasing for the muxer."""
    if pts is None:
        pts = last + step if last is not None else 0
    return last + 1 if last is not None and pts <= last else pts


def _frame_step(info: VideoInfo) -> int:
    """One frame's duration in the stream's time base."""
    return round(1 / (float(info.rate or 25) * info.time_base)) if info.time_base else 1


def restore_frames(restorer, frames: Iterable[np.ndarray], stabilize: float | None = None) -> Iterator[np.ndarray]:
    """For other tools (VapourSynth, ffmpeg-python, OpenCV loops): uint8 RGB frames (H x W x 3) in
    display order in, their restorations out, one for one, as `revamp video` restores a file (the
    stabiliser at ``stabilize``, None for the model's default mix, 0 for none, whose look-ahead
    delays the output by two frames; a multi-frame model's neighbours, which delays it by its
    window). Raw frames carry no quantisers, so a codec-aware model runs blind on them
    (restore_video_frame)."""
    stabilizer, warps = _temporal(restorer, stabilize)
    n = restorer.neighbours
    # Raw frames carry no steps: a quality model's planes are neutral.
    items = ((rgb, BLIND, neighbour_planes(context, n, restorer.config, warps) if n else None, None)
             for rgb, context in _with_context(frames, n, lambda rgb: rgb))
    for restored, _ in restore_sequence(restorer, items, stabilizer):
        yield restored


QP_PROBE_FRAMES = 24


def input_qp(src: Path) -> float | None:
    """The input's H.264-equivalent QP: the median over its first frames of each frame's mean
    quantiser step, from the maps the decoder exports or HEVC's slice QPs (whose steps are
    H.264's): the hints revamp.codec.hint_for_video_frame reads; None for other codecs."""
    with open_input(src) as container:
        codec = container.streams.video[0].codec_context.name
        if codec not in VIDEO_CODEC_NAMES:
            return None
        steps = []
        for frame in decode_frames(container, DecodeReport(), export_qp=True):
            hint = hint_for_video_frame(frame, codec)
            if hint.steps is not None:
                steps.append(float(np.mean(hint.steps)))
            if len(steps) == QP_PROBE_FRAMES:
                break
    return float(6 * np.log2(np.median(steps) / h26x_step(0))) if steps else None


def restore_video(src: str | Path, dst: str | Path, restorer, options: VideoOptions | None = None, resume: bool = False,
                  overwrite: bool = False, quiet: bool = False, dist=None) -> VideoReport:
    """``dist`` (revamp.train.common.Dist, under torchrun): every process decodes the whole input
    and restores the segments ``index % world == rank``; rank 0 writes the output once all are done.
    Segments are independent, so the result equals a single-process run's."""
    src, dst, options = Path(src), Path(dst), options or VideoOptions()
    # Resolved first: the job's signature records the mix used.
    options = replace(options, stabilize=restorer.stabilize if options.stabilize is None else options.stabilize)
    rank, world = (dist.rank, dist.world) if dist else (0, 1)
    check_output(dst, options.codec)
    if dst.exists() and not overwrite:
        raise VideoError(f"{dst} exists (--overwrite replaces it)")
    if dst.exists() and src.exists() and dst.samefile(src):
        raise VideoError(f"{dst} is the input: write the output to another file")
    if options.deinterlace not in (None, "bwdif", "yadif"):
        raise VideoError(f"unknown deinterlacer {options.deinterlace!r}: use bwdif or yadif")
    info = probe(src)
    if options.quality is None and CODECS[options.codec][2] == "crf":
        options = replace(options, quality=output_crf(input_qp(src)))
    container = open_input(src)
    work = dst.parent / f".{dst.name}.revamp-work"
    try:
        if rank == 0:
            _prepare_work_dir(work, _job_signature(src, restorer, options), resume)
        if dist:
            dist.barrier()
        report = VideoReport(notes=info.notes())
        decode = DecodeReport()
        owned = (lambda segment: segment % world == rank) if world > 1 else None
        end_s = _restore_segments(container, info, work, restorer, options, decode, report, quiet or rank > 0, owned)
        if decode.stopped_early is None and info.duration_s and end_s < info.duration_s - 1.5 / float(info.rate or 25):
            decode.stopped_early = f"the video stops at {end_s:.2f} s of the {info.duration_s:.2f} s the file declares (truncated?)"
        report.frames, report.damage = decode.frames, decode.problems()
        if decode.frames == 0:
            raise VideoError(f"{src}: no video frame could be decoded")
    except Exception:
        # A failed job with nothing worth resuming leaves nothing behind (Ctrl-C keeps the folder).
        if rank == 0 and work.is_dir() and not any(work.glob("segment-*.seg")):
            shutil.rmtree(work)
        raise
    finally:
        container.close()
    if dist:
        dist.barrier()  # every rank's segments are on disk
    if rank == 0:
        segments = -(-decode.frames // options.segment_frames)
        report.copied_streams = _mux(src, dst, work, info, segments, _segment_format(options.codec))
        shutil.rmtree(work)
    return report


Y4M_FORMATS = ("yuv420p", "yuv422p", "yuv444p")  # 8-bit layouts a y4m stream keeps as they come; others become yuv420p


def restore_stream(src: str | Path, dst: str | Path, restorer, options: VideoOptions | None = None, overwrite: bool = False,
                   quiet: bool = False) -> VideoReport:
    """`revamp video` through pipes: ``src`` a file or PIPE (stdin: any stream FFmpeg reads),
    ``dst`` a file or PIPE (stdout: y4m). Frames are restored and written as they decode, with no
    work folder and no resume; only the video is written (a pipeline maps audio from the source,
    for example ffmpeg ... -map 0:v -map 1:a)."""
    options = options or VideoOptions()
    to_stdout = str(dst) == PIPE
    if not to_stdout:
        dst = Path(dst)
        check_output(dst, options.codec)
        if dst.exists() and not overwrite:
            raise VideoError(f"{dst} exists (--overwrite replaces it)")
        tmp = dst.with_name(f".{dst.name}.part{dst.suffix}")  # renamed into place when complete
    container = open_pipe_input() if str(src) == PIPE else open_input(src)
    out = None
    try:
        decode, report = DecodeReport(), VideoReport()
        frames = decode_frames(container, decode, options.deinterlace, export_qp=True)
        first = next(frames, None)
        if first is None:
            raise VideoError(f"{'stdin' if str(src) == PIPE else src}: no video frame could be decoded")
        info = describe(container, first)
        report.notes = info.notes()
        codec = container.streams.video[0].codec_context.name
        scale, n = restorer.scale, restorer.neighbours
        width, height = _output_size(first, scale)
        if to_stdout:
            pix_fmt = first.format.name if first.format.name in Y4M_FORMATS else "yuv420p"
            out, stream = open_y4m_output(info, pix_fmt, width, height)
        else:
            pix_fmt = CODECS[options.codec][1]
            out = av.open(str(tmp), "w")
            quality = options.quality if options.quality is not None or CODECS[options.codec][2] != "crf" else output_crf(None)
            stream = open_encoder_stream(out, options.codec, quality, info, width, height)
        stabilizer, warps = _temporal(restorer, options.stabilize)
        step, last_pts = _frame_step(info), None
        bar = tqdm(total=info.frames or None, unit="frame", desc="restoring", disable=quiet, dynamic_ncols=True)
        frames_rgb = _with_context(itertools.chain([first], frames), n, _rgb_and_hint(info, codec, restorer.exact_video_rgb))
        items = (_decoded_item(frame, context, info, codec, restorer, warps, frame) for frame, context in frames_rgb)
        for index, (restored, frame) in enumerate(restore_sequence(restorer, items, stabilizer, codec=codec)):
            encoded = rgb_to_frame(restored[:height, :width], pix_fmt, info)
            if to_stdout:
                encoded.pts = index  # y4m is constant-rate: frame numbers
            else:  # the input's timestamps
                last_pts = _next_pts(frame.pts, last_pts, step)
                encoded.pts, encoded.time_base = last_pts, info.time_base
            for packet in stream.encode(encoded):
                out.mux(packet)
            report.restored_frames += 1
            bar.update()
        bar.close()
        for packet in stream.encode(None):
            out.mux(packet)
        out.close()
        if not to_stdout:
            os.replace(tmp, dst)
        report.frames, report.damage = decode.frames, decode.problems()
        return report
    except BaseException:
        if not to_stdout:
            tmp.unlink(missing_ok=True)
        raise
    finally:
        if out is not None:
            out.close()
        container.close()


def _restore_segments(container, info: VideoInfo, work: Path, restorer, options: VideoOptions, decode: DecodeReport,
                      report: VideoReport, quiet: bool, owned=None) -> float:
    """Restores every segment not yet on disk (of those ``owned`` by this process); returns the
    end time of the last decoded frame (s)."""
    scale = restorer.scale
    stabilizer, warps = _temporal(restorer, options.stabilize)
    deinterlace = options.deinterlace
    total = info.frames or (round(info.duration_s * float(info.rate)) if info.duration_s and info.rate else None)
    bar = tqdm(total=total, unit="frame", desc="restoring", disable=quiet, dynamic_ncols=True)
    writer: _SegmentWriter | None = None
    helper = ThreadPoolExecutor(1, thread_name_prefix="revamp-motion") if stabilizer else None
    step = _frame_step(info)
    last_pts, end_s = None, 0.0
    n = restorer.neighbours
    try:
        codec = container.streams.video[0].codec_context.name
        frames = decode_frames(container, decode, deinterlace, export_qp=restorer.codec_aware or restorer.config.neighbour_quality or restorer.config.neighbour_step_gate
                               or stabilizer is not None)
        def with_times(stream):
            nonlocal last_pts, end_s
            for frame, context in stream:
                pts = last_pts = _next_pts(frame.pts, last_pts, step)
                end_s = float((pts + (frame.duration or step)) * info.time_base)
                yield frame, context, pts

        stream = with_times(_with_context(frames, n, _rgb_and_hint(info, codec, restorer.exact_video_rgb)))
        for segment, group in itertools.groupby(enumerate(stream), key=lambda e: e[0] // options.segment_frames):
            if _segment_path(work, segment).exists() or (owned and not owned(segment)):
                for _ in group:
                    bar.update()
                continue
            _, (first, first_context, first_pts) = next(group)
            writer = _SegmentWriter(_segment_path(work, segment), options, info, *_output_size(first, scale))
            if stabilizer:
                stabilizer.reset()  # segments are restored independently, so a resumed job restores the same frames
            entries = itertools.chain([(first, first_context, first_pts)], (entry for _, entry in group))  # noqa: B031 (used once)
            items = (_decoded_item(frame, context, info, codec, restorer, warps, (pts, frame.duration)) for frame, context, pts in entries)
            for restored, (pts, duration) in restore_sequence(restorer, items, stabilizer, helper, codec):
                writer.write(restored, pts, duration)
                report.restored_frames += 1
                bar.update()
            writer.close()
            writer = None
        return end_s
    finally:
        bar.close()
        if helper is not None:
            helper.shutdown(cancel_futures=True)
        if writer is not None:  # interrupted: drop the unfinished segment, keep the finished ones
            writer.container.close()
            writer.tmp.unlink(missing_ok=True)


def _with_context(frames, n: int, to_rgb):
    """(frame, the RGB (``to_rgb(frame)``) of frames index-n .. index+n, None beyond the video's
    ends) in display order: multi-frame models see n frames ahead. With n = 0: (frame, None),
    nothing converted."""
    if not n:
        yield from ((frame, None) for frame in frames)
        return
    window: deque = deque([None] * n, maxlen=2 * n + 1)
    pending = 0  # frames read but not yet given out
    for frame in frames:
        window.append((frame, to_rgb(frame)))
        pending += 1
        if len(window) == window.maxlen:
            pending -= 1
            yield window[n][0], [item[1] if item else None for item in window]
    while pending:
        window.append(None)
        if len(window) == window.maxlen:
            pending -= 1
            yield window[n][0], [item[1] if item else None for item in window]


def _timed(packets, source: int):
    """(seconds, source, n, packet) for heapq.merge: packets of all sources in decoding-time order."""
    for n, packet in enumerate(packets):
        if packet.dts is None and packet.pts is None:
            continue  # demuxer flush packets
        ts = packet.dts if packet.dts is not None else packet.pts
        yield float(ts * packet.time_base), source, n, packet


def _segment_packets(work: Path, count: int, time_base: Fraction, fmt: str):
    """The video packets of all segments in decoding order, in ``time_base``, with decoding timestamps rebuilt."""
    paths = [_segment_path(work, index) for index in range(count)]
    for index, path in enumerate(paths):
        if not path.exists():
            raise VideoError(f"segment {index} is missing from {work}")
    dts = _DecodingTimes(max(_reorder_depth([p.pts for p in _video_packets(seg)]) for seg in _opened(paths, fmt)))
    for path, seg in zip(paths, _opened(paths, fmt)):  # open while its packets are in use: they point into its buffers
        packets = _video_packets(seg)
        first_pts = json.loads(path.with_suffix(".json").read_text())["first_pts"]
        for p in packets:  # the input's time base holds every frame time exactly
            p.pts = round(p.pts * p.time_base / time_base)
            p.time_base = time_base
        shift = min(p.pts for p in packets) - first_pts  # the segment muxer's own shift (see _SegmentWriter.close)
        for p in packets:
            p.pts -= shift
        dts.assign(packets)
        yield from packets


def _opened(paths: list[Path], fmt: str) -> Iterator:
    for path in paths:
        with av.open(str(path), format=fmt) as seg:
            yield seg


def _video_packets(container) -> list:
    return [p for p in container.demux(container.streams.video[0]) if p.pts is not None]


def _reorder_depth(pts: list[int]) -> int:
    """How many packets ahead of its presentation rank a packet can come in decoding order (B-frame delay)."""
    rank = {t: i for i, t in enumerate(sorted(pts))}
    return max((rank[t] - i for i, t in enumerate(pts)), default=0)


class _DecodingTimes:
    """Segments are encoded separately, NUT keeps no negative dts, and each segment's B-frame delay
    differs, so dts are rebuilt for the joined stream: with d the largest reorder depth of all
    segments, the i-th packet overall decodes at the (i - d)-th presentation time. That rises
    strictly across segment boundaries and never passes pts."""

    def __init__(self, depth: int):
        self.depth = depth
        self.shown: list[int] | None = None  # the last ``depth`` presentation times so far

    def assign(self, packets: list) -> None:
        ordered = sorted(p.pts for p in packets)
        if self.shown is None:  # before the first frame: step back by the shortest frame interval
            gap = min((b - a for a, b in itertools.pairwise(ordered)), default=1)
            self.shown = [ordered[0] - (self.depth - j) * gap for j in range(self.depth)]
        times = self.shown + ordered
        for i, p in enumerate(packets):
            p.dts = times[i]
        self.shown = times[len(times) - self.depth :]


def _mux(src: Path, dst: Path, work: Path, info: VideoInfo, segments: int, fmt: str) -> list[str]:
    """Interleaves the restored video with the input's audio and subtitle packets into ``dst``."""
    tmp = dst.with_name(f".{dst.name}.part{dst.suffix}")
    copied: list[str] = []
    try:
        with av.open(str(src)) as inp, av.open(str(_segment_path(work, 0)), format=fmt) as first, av.open(str(tmp), "w") as out:
            video = out.add_stream_from_template(first.streams.video[0])
            video.time_base = info.time_base
            if info.rotation:
                video.set_display_rotation(info.rotation)
            video.metadata.update(inp.streams.video[0].metadata)
            out.metadata.update(info.container_metadata)
            streams = {}
            for s in inp.streams:
                if s.type not in COPIED_STREAM_TYPES:
                    continue
                name = s.codec_context.name if s.codec_context else s.type
                if out.supported_codecs and name not in out.supported_codecs:
                    raise VideoError(f"{dst.suffix} files cannot hold the input's {name} {s.type} stream; use .mkv")
                streams[s.index] = out.add_stream_from_template(s)
                streams[s.index].metadata.update(s.metadata)
                copied.append(f"{s.type} ({name})")
            sources = [_timed(_segment_packets(work, segments, info.time_base, fmt), 0)]
            if streams:
                sources.append(_timed(_safe_demux(inp, [inp.streams[i] for i in streams]), 1))
            for _, source, _, packet in heapq.merge(*sources, key=lambda item: item[:2]):
                packet.stream = video if source == 0 else streams[packet.stream.index]
                out.mux(packet)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return copied


def _safe_demux(container, streams):
    """Demuxes until the end or the first unreadable packet (a truncated file keeps what it has)."""
    packets = container.demux(streams)
    while True:
        try:
            yield next(packets)
        except StopIteration:
            return
        except av.error.FFmpegError:
            return
