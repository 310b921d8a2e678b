"""Video files through FFmpeg's libraries (PyAV): decode to RGB with the right colour matrix,
encode restored RGB back with the input's colour tags, and copy every other stream untouched.

Colour: decoded frames are converted with their own matrix (BT.601/BT.709/...) and range
(limited/full); untagged ones get what players assume (BT.709 from 720 lines up, else BT.601;
limited range unless the pixel format is a full-range "yuvj" one). Output frames are converted
back with the same matrix and range and tagged with them, so colours round-trip.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from revamp.defaults import OUTPUT_CRF_BLIND, OUTPUT_CRF_MARGIN, OUTPUT_CRF_MAX, OUTPUT_CRF_MIN, OUTPUT_X264_PRESET
from revamp.hevc import HevcQuantisers

# FFmpeg's AVColorSpace / AVColorRange numbers (as PyAV reports them).
SPACE_BT709, SPACE_BT470BG, SPACE_SMPTE170M, SPACE_BT2020 = 1, 5, 6, 9
RANGE_LIMITED, RANGE_FULL = 1, 2
_SWS_SPACE = {SPACE_BT709: "itu709", SPACE_BT470BG: "itu601", SPACE_SMPTE170M: "smpte170m", SPACE_BT2020: "bt2020", 7: "smpte240m", 4: "fcc"}
_SWS_RANGE = {RANGE_LIMITED: "MPEG", RANGE_FULL: "JPEG"}

# --codec -> (encoder, pixel format, quality option, containers it fits in); the default CRF of
# h264/h265 follows the input's quantisers (output_crf).
CODECS = {
    "h264": ("libx264", "yuv420p", "crf", {".mp4", ".mov", ".mkv"}),
    "h265": ("libx265", "yuv420p", "crf", {".mp4", ".mov", ".mkv"}),
    "ffv1": ("ffv1", "yuv420p", None, {".mkv", ".avi"}),
    "prores": ("prores_ks", "yuv422p10le", None, {".mov", ".mkv"}),
}


class VideoError(Exception):
    """A problem with a video file, reported to the user as one line."""


@dataclass
class VideoInfo:
    """What the output must keep from the input's video stream."""

    time_base: Fraction
    rate: Fraction | None  # average frame rate (None when unknown)
    frames: int  # frame count from the container (0 when unknown)
    duration_s: float | None
    colorspace: int
    color_range: int
    color_primaries: int
    color_trc: int
    sample_aspect_ratio: Fraction | None
    rotation: int  # display rotation in degrees, counter-clockwise
    container_metadata: dict = field(default_factory=dict)
    width: int = 0
    height: int = 0
    bits: int = 8  # bits per sample of the decoded pictures
    video_streams: int = 1

    def notes(self) -> list[str]:
        """What the output cannot keep of the input, for the user (revamp restores the first video
        stream, in 8 bits per channel, into 4:2:0 or 4:2:2, which need even sizes)."""
        out = []
        if self.video_streams > 1:
            out.append(f"the input has {self.video_streams} video streams: only the first is restored, the others are left out")
        if self.bits > 8:
            out.append(f"the input has {self.bits} bits per sample: it is restored and written in 8")
        if self.width % 2 or self.height % 2:
            out.append(f"{self.width}x{self.height} has an odd side: the output is {self.width // 2 * 2}x{self.height // 2 * 2} "
                       "(4:2:0 needs even sizes; the last column or row is dropped)")
        return out


def open_input(path: str | Path):
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path}: no such file")
    try:
        container = av.open(str(path), "r")
    except av.error.FFmpegError as exc:
        raise VideoError(f"{path}: not a readable video file ({exc.strerror or exc})") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: has no video stream")
    return container


def _guess_colorspace(space: int, height: int) -> int:
    if space in _SWS_SPACE:
        return space
    return SPACE_BT709 if height >= 720 else SPACE_SMPTE170M


def _guess_range(color_range: int, pix_fmt: str | None) -> int:
    if color_range in (RANGE_LIMITED, RANGE_FULL):
        return color_range
    return RANGE_FULL if pix_fmt and pix_fmt.startswith("yuvj") else RANGE_LIMITED


def probe(path: str | Path) -> VideoInfo:
    """Reads the stream header and the first frame (for colour tags and rotation)."""
    with open_input(path) as container:
        return _probe(container)


def _probe(container) -> VideoInfo:
    first = None
    try:
        for frame in container.decode(container.streams.video[0]):
            first = frame
            break
    except av.error.FFmpegError:
        pass
    return describe(container, first)


def describe(container, first: av.VideoFrame | None) -> VideoInfo:
    """The VideoInfo of ``container``'s first video stream, whose first decoded frame is ``first``
    (None if none decoded): a pipe, which cannot be read twice, is described from the frame its
    restoration decodes anyway."""
    stream = container.streams.video[0]
    ctx = stream.codec_context
    height = ctx.height
    pix_fmt = ctx.format.name if ctx.format else None
    space = first.colorspace if first is not None else ctx.colorspace
    crange = first.color_range if first is not None else ctx.color_range
    duration = float(stream.duration * stream.time_base) if stream.duration else (
        container.duration / av.time_base if container.duration else None)
    return VideoInfo(
        time_base=stream.time_base,
        rate=stream.average_rate or stream.guessed_rate, frames=stream.frames or 0, duration_s=duration,
        colorspace=_guess_colorspace(int(space), height), color_range=_guess_range(int(crange), pix_fmt),
        color_primaries=int(ctx.color_primaries), color_trc=int(ctx.color_trc),
        sample_aspect_ratio=stream.sample_aspect_ratio,
        rotation=int(first.rotation) if first is not None else 0,
        container_metadata=dict(container.metadata),
        width=ctx.width, height=height, video_streams=len(container.streams.video),
        bits=max((c.bits for c in ctx.format.components), default=8) if ctx.format else 8,
    )


def frame_to_rgb(frame: av.VideoFrame, info: VideoInfo | None = None, exact: bool = True) -> np.ndarray:
    """uint8 RGB of a decoded frame by the stream's colour tags (``info``; None: the frame's own,
    untagged ones guessed as for a stream)."""
    space = info.colorspace if info else _guess_colorspace(int(frame.colorspace), frame.height)
    crange = info.color_range if info else _guess_range(int(frame.color_range), frame.format.name)
    return decoded_rgb(frame, space, crange, exact)


def decoded_rgb(frame: av.VideoFrame, colorspace: int, color_range: int, exact: bool = True) -> np.ndarray:
    """uint8 RGB of a decoded frame with the given matrix and range: ``exact`` (yuv_to_rgb), or
    FFmpeg's fast conversion, which models trained on it expect (revamp.models.files.exact_video_rgb);
    layouts yuv_to_rgb does not take always go through FFmpeg."""
    rgb = yuv_to_rgb(frame, colorspace, color_range) if exact else None
    if rgb is None:
        # threads=1 at every conversion: from PyAV 18.1.1 swscale defaults to a thread pool, which
        # hangs any process forked after it (DataLoader workers).
        rgb = frame.reformat(format="rgb24", src_colorspace=_SWS_SPACE[colorspace], src_color_range=_SWS_RANGE[color_range],
                             interpolation="BICUBIC", threads=1).to_ndarray()
    return rgb


# Kr, Kb of each matrix (ITU-T H.273): Y' = Kr R' + (1 - Kr - Kb) G' + Kb B'.
_KR_KB = {SPACE_BT709: (0.2126, 0.0722), SPACE_BT470BG: (0.299, 0.114), SPACE_SMPTE170M: (0.299, 0.114),
          SPACE_BT2020: (0.2627, 0.0593), 7: (0.212, 0.087), 4: (0.30, 0.11)}


def yuv_to_rgb(frame: av.VideoFrame, colorspace: int, color_range: int) -> np.ndarray | None:
    """uint8 RGB of a planar Y'CbCr frame (8 to 16 bits, any chroma subsampling): the exact matrix
    in float, chroma upsampled bilinearly, rounded once; None for other layouts. FFmpeg's fast
    conversion as PyAV calls it (swscale without its accurate-rounding flags) makes RGB 1-1.5
    levels too dark and rounds coarsely: on Vid4 the Y of its RGB lies 46-47 dB from the decoded Y
    plane (this one's: 56-59 dB), 0.14 dB of PSNR-Y against the originals at H.264 QP27."""
    fmt = frame.format
    if not fmt.name.startswith("yuv") or fmt.name.endswith("be") or not fmt.is_planar or len(frame.planes) < 3:
        return None
    bits = fmt.components[0].bits
    dtype = np.dtype("<u2") if bits > 8 else np.dtype(np.uint8)
    planes = []
    for plane in frame.planes[:3]:
        data = np.frombuffer(plane, dtype, count=plane.line_size // dtype.itemsize * plane.height)
        planes.append(data.reshape(plane.height, -1)[:, : plane.width].astype(np.float32))
    y, cb, cr = planes
    h, w = y.shape
    if cb.shape != y.shape:
        cb = cv2.resize(cb, (w, h), interpolation=cv2.INTER_LINEAR)
        cr = cv2.resize(cr, (w, h), interpolation=cv2.INTER_LINEAR)
    top, half = 2**bits - 1, 2 ** (bits - 1)
    if color_range == RANGE_FULL:
        black, y_scale, c_scale = 0, 255 / top, 255 / top
    else:
        s = 2 ** (bits - 8)
        black, y_scale, c_scale = 16 * s, 255 / (219 * s), 255 / (224 * s)
    kr, kb = _KR_KB.get(colorspace, _KR_KB[SPACE_BT709])
    kg = 1 - kr - kb
    # R = Y + (2 - 2 Kr) Cr, B = Y + (2 - 2 Kb) Cb, G = (Y - Kr R - Kb B) / Kg; one affine map.
    matrix = np.array([[y_scale, 0, (2 - 2 * kr) * c_scale],
                       [y_scale, -kb * (2 - 2 * kb) / kg * c_scale, -kr * (2 - 2 * kr) / kg * c_scale],
                       [y_scale, (2 - 2 * kb) * c_scale, 0]])
    offset = -matrix @ np.array([black, half, half])
    rgb = cv2.transform(cv2.merge([y, cb, cr]), np.hstack([matrix, offset[:, None]]))
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def rgb_to_frame(rgb: np.ndarray, pix_fmt: str, info: VideoInfo) -> av.VideoFrame:
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    return frame.reformat(format=pix_fmt, dst_colorspace=_SWS_SPACE[info.colorspace],
                          dst_color_range=_SWS_RANGE[info.color_range], interpolation="BICUBIC", threads=1)


@dataclass
class DecodeReport:
    frames: int = 0
    damaged_packets: int = 0
    corrupt_frames: int = 0
    stopped_early: str | None = None  # why demuxing ended before the end of the file

    def problems(self) -> str | None:
        parts = []
        if self.damaged_packets:
            parts.append(f"{self.damaged_packets} damaged packet(s) skipped")
        if self.corrupt_frames:
            parts.append(f"{self.corrupt_frames} frame(s) decoded with errors")
        if self.stopped_early:
            parts.append(f"reading stopped early: {self.stopped_early}")
        return "; ".join(parts) or None


def filter_graph(name: str, args: str, **buffer) -> av.filter.Graph:
    """buffer -> one FFmpeg filter -> buffersink; ``buffer`` describes the frames pushed in."""
    graph = av.filter.Graph()
    src = graph.add_buffer(**buffer)
    node = graph.add(name, args)
    sink = graph.add("buffersink")
    src.link_to(node)
    node.link_to(sink)
    graph.configure()
    return graph


def decode_frames(container, report: DecodeReport, deinterlace: str | None = None, export_qp: bool = False) -> Iterator[av.VideoFrame]:
    """Every frame that decodes, in display order; damage is counted in ``report``, not raised.
    ``export_qp``: frames carry the decoder's quantiser maps (VideoEncParams side data); HEVC
    frames their picture's slice QP as ``opaque`` (revamp.codec.hint_for_video_frame)."""
    stream = container.streams.video[0]
    hevc = HevcQuantisers(stream.codec_context.extradata) if export_qp and stream.codec_context.name == "hevc" else None
    # Frame threads race the export of quantiser maps (FFmpeg 7: a frame now and then comes with
    # another frame's map, or an empty one, under load); slice threads do not. A packet's opaque
    # value reaches its frame under any threading.
    stream.thread_type = "SLICE" if export_qp and not hevc else "AUTO"
    if hevc:
        stream.codec_context.copy_opaque = True
    elif export_qp:
        stream.codec_context.options = {"export_side_data": "venc_params"}
    # bwdif/yadif in frame mode: one output frame per input frame.
    graph = filter_graph(deinterlace, "mode=send_frame:parity=auto:deint=all", template=stream) if deinterlace else None

    def emit(frame):
        if frame.is_corrupt:
            report.corrupt_frames += 1
        if graph is None:
            report.frames += 1
            yield frame
            return
        graph.push(frame)
        yield from _drain(graph, report, stream.time_base)

    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            break
        except av.error.FFmpegError as exc:
            report.stopped_early = str(exc.strerror or exc)
            break
        if hevc and packet.size:
            packet.opaque = hevc.picture_qp(bytes(packet))
        try:
            frames = packet.decode()
        except av.error.FFmpegError:
            report.damaged_packets += 1
            continue
        for frame in frames:
            yield from emit(frame)
    if graph is not None:
        graph.push(None)
        yield from _drain(graph, report, stream.time_base)


def _drain(graph, report: DecodeReport, time_base: Fraction) -> Iterator[av.VideoFrame]:
    while True:
        try:
            frame = graph.pull()
        except (av.error.BlockingIOError, av.error.EOFError):
            return
        # bwdif/yadif count in fields (half the time base): back to the stream's time base.
        if frame.pts is not None and frame.time_base and frame.time_base != time_base:
            frame.pts = round(frame.pts * frame.time_base / time_base)
            frame.duration = round(frame.duration * frame.time_base / time_base) if frame.duration else 0
            frame.time_base = time_base
        report.frames += 1
        yield frame


PIPE = "-"  # `revamp video - -o -`: read any stream FFmpeg reads from stdin, write y4m to stdout


def open_pipe_input():
    """stdin as an input container (y4m, MPEG-TS, ... whatever FFmpeg detects in the stream)."""
    try:
        container = av.open("pipe:0", "r")
    except av.error.FFmpegError as exc:
        raise VideoError(f"stdin: not a readable video stream ({exc.strerror or exc})") from None
    if not container.streams.video:
        container.close()
        raise VideoError("stdin: the stream has no video")
    return container


def open_y4m_output(info: VideoInfo, pix_fmt: str, width: int, height: int):
    """stdout as a yuv4mpegpipe (y4m) container with one stream of ``pix_fmt`` frames at the
    input's frame rate; y4m carries the rate, size, chroma layout and colour range."""
    container = av.open("pipe:1", "w", format="yuv4mpegpipe")
    stream = container.add_stream("wrapped_avframe", rate=info.rate or Fraction(25))
    stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
    stream.codec_context.color_range = info.color_range
    stream.codec_context.colorspace = info.colorspace
    if info.sample_aspect_ratio:
        stream.codec_context.sample_aspect_ratio = info.sample_aspect_ratio
    return container, stream


def check_output(path: Path, codec: str) -> None:
    if codec not in CODECS:
        raise VideoError(f"unknown codec {codec!r}: use one of {', '.join(CODECS)}")
    suffixes = CODECS[codec][3]
    if path.suffix.lower() not in suffixes:
        raise VideoError(f"{path.name}: {codec} needs a {' or '.join(sorted(suffixes))} file")


def output_crf(input_qp: float | None) -> int:
    """The default CRF of an h264/h265 output for an input of H.264-equivalent QP ``input_qp`` (None: unknown)."""
    if input_qp is None:
        return OUTPUT_CRF_BLIND
    return int(np.clip(round(input_qp) - OUTPUT_CRF_MARGIN, OUTPUT_CRF_MIN, OUTPUT_CRF_MAX))


def open_encoder_stream(container, codec: str, quality: int | None, info: VideoInfo, width: int, height: int):
    """A video stream in ``container`` that encodes at the input's time base and colour tags."""
    encoder, pix_fmt, quality_option, _ = CODECS[codec]
    stream = container.add_stream(encoder, rate=info.rate or Fraction(25))
    ctx = stream.codec_context
    ctx.width, ctx.height, ctx.pix_fmt = width, height, pix_fmt
    ctx.time_base = stream.time_base = info.time_base
    ctx.colorspace, ctx.color_range = info.colorspace, info.color_range
    ctx.color_primaries, ctx.color_trc = info.color_primaries, info.color_trc
    if info.sample_aspect_ratio:
        ctx.sample_aspect_ratio = info.sample_aspect_ratio
    options = {}
    if quality_option:
        options[quality_option] = str(output_crf(None) if quality is None else quality)
    # At the near-transparent rates the defaults choose (CRF <= 12), psycho-visual tuning and adaptive
    # quantisation only add error (x264's --tune psnr turns them off): at CRF 4 after an H.264 QP27
    # input they cost 0.02 dB PSNR-Y (docs/video.md).
    fidelity = quality_option == "crf" and (quality is None or quality <= OUTPUT_CRF_MAX)
    if codec == "h264" and fidelity:
        options.update({"preset": OUTPUT_X264_PRESET, "x264-params": "psy=0:aq-mode=0"})
    if codec == "h265":
        options["x265-params"] = "log-level=error" + (":psy-rd=0:psy-rdoq=0:aq-mode=0" if fidelity else "")
    if codec == "prores":
        options["profile"] = "3"  # ProRes 422 HQ
    if codec == "ffv1":
        options.update({"level": "3", "g": "1", "slicecrc": "1"})
    ctx.options = options
    return stream
