"""Synthetic degradations: what archive pictures went through, reproducible from a seed.

Every degradation maps a clean uint8 RGB array (H, W, 3) to a degraded uint8
array, drawing its random choices from the numpy Generator it is given. ``sample`` also returns
the quantiser step of the last compression (``revamp.codec`` units; None: not compressed), what a
codec-aware model is told in training.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image

from revamp.codec import QP_MAP_CODECS, h26x_step, hint_for_video_frame, ijg_table, jpeg_step, mpeg_step
from revamp.hevc import HevcQuantisers
from revamp.video.io import RANGE_LIMITED, SPACE_SMPTE170M, decoded_rgb

SUBSAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}


def jpeg(img: np.ndarray, quality: int, subsampling: str = "4:2:0") -> np.ndarray:
    """One JPEG round trip through libjpeg (PIL), IJG quality scale. A 2-D array is coded as a
    one-component (grayscale) JPEG and comes back 2-D; chroma subsampling applies to colour only."""
    buf = io.BytesIO()
    if img.ndim == 2:
        Image.fromarray(img, "L").save(buf, format="JPEG", quality=int(quality))
    else:
        Image.fromarray(img).save(buf, format="JPEG", quality=int(quality), subsampling=SUBSAMPLING[subsampling])
    buf.seek(0)
    with Image.open(buf) as decoded:
        return np.asarray(decoded.convert("L" if img.ndim == 2 else "RGB"))


def double_jpeg(img: np.ndarray, q1: int, q2: int, shift: tuple[int, int], subsampling: str = "4:2:0") -> np.ndarray:
    """Compress, shift the 8x8 grid by (dy, dx) pixels, compress again (a re-saved, re-cropped file)."""
    dy, dx = shift
    first = jpeg(img, q1, subsampling)
    padded = np.pad(first, ((dy, 0), (dx, 0), (0, 0))[: img.ndim], mode="edge")
    return jpeg(padded, q2, subsampling)[dy:, dx:]


def downscale(img: np.ndarray, scale: int, method: str = "bicubic", blur: float = 0.0) -> np.ndarray:
    """Downscale by an integer factor (as archive material was made), optionally blurred first."""
    from PIL import ImageFilter

    pil = Image.fromarray(img)
    if blur > 0:
        pil = pil.filter(ImageFilter.GaussianBlur(blur))
    resample = {"bicubic": Image.Resampling.BICUBIC, "area": Image.Resampling.BOX}[method]
    h, w = img.shape[:2]
    return np.asarray(pil.resize((w // scale, h // scale), resample))


@dataclass
class JpegDegradation:
    """Random JPEG compression as in the config's ``degradation.jpeg`` section.

    quality is drawn from [lo, hi] with density biased to low qualities by
    ``quality_power`` (1: uniform; 2: median about a quarter of the range).
    """

    quality: tuple[int, int] = (5, 95)
    quality_power: float = 1.0
    subsampling: dict[str, float] = field(default_factory=lambda: {"4:2:0": 0.8, "4:4:4": 0.2})
    double_prob: float = 0.0

    def sample_quality(self, rng: np.random.Generator) -> int:
        lo, hi = self.quality
        return int(round(lo + (hi - lo) * rng.random() ** self.quality_power))

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.sample(img, rng)[0]

    def sample(self, img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float | None]:
        modes = list(self.subsampling)
        probs = np.array([self.subsampling[m] for m in modes], dtype=float)
        mode = modes[rng.choice(len(modes), p=probs / probs.sum())]
        q = self.sample_quality(rng)
        step = jpeg_step(ijg_table(q))  # a double-compressed file only tells its last quality
        if rng.random() < self.double_prob:
            shift = (int(rng.integers(0, 8)), int(rng.integers(0, 8)))
            return double_jpeg(img, self.sample_quality(rng), q, shift, mode), step
        return jpeg(img, q, mode), step


# Video codecs: (encoder, decoder, quantiser kind). Quantisers are H.264/H.265 QP (0..51) or the
# MPEG-2/MPEG-4 Part 2 qscale (1..31), both constant over the clip.
VIDEO_CODECS = {
    "h264": ("libx264", "h264", "qp"),
    "h265": ("libx265", "hevc", "qp"),
    "mpeg2": ("mpeg2video", "mpeg2video", "qscale"),
    "mpeg4": ("mpeg4", "mpeg4", "qscale"),
}


# x264/x265 presets of the round trip when none is asked for: fast ones (they run in data workers).
DEFAULT_PRESETS = {"h264": "veryfast", "h265": "ultrafast"}


def video_roundtrip(frames: list[np.ndarray], codec: str, q: int, gop: int = 12, bframes: int = 2, steps: list | None = None,
                    preset: str | None = None, luma: list | None = None, fast: list | None = None) -> list[np.ndarray]:
    """Encode RGB frames (even sizes) to ``codec`` at constant quantiser ``q`` in yuv420p and decode
    them again with FFmpeg's libraries (PyAV). Returns the decoded frames in display order (RGB by
    the exact conversion, revamp.video.io.yuv_to_rgb); the mean quantiser step of each is appended
    to ``steps`` if given (``_decoded_step``), its decoded Y plane (uint8, before any conversion to
    RGB) to ``luma``, and its RGB by FFmpeg's fast conversion to ``fast`` (what models trained on
    that conversion are given: revamp.models.files.exact_video_rgb). ``preset``:
    x264/x265's (default DEFAULT_PRESETS; slower presets filter and decide more, so their
    artifacts differ). x264 takes no ``bframes`` option (FFmpeg's name is ``bf``), so its
    preset's B frames apply (3, as a B pyramid); kept so that measured numbers reproduce."""
    from fractions import Fraction

    import av

    encoder, decoder, kind = VIDEO_CODECS[codec]
    h, w = frames[0].shape[:2]
    enc = av.CodecContext.create(encoder, "w")
    enc.width, enc.height, enc.pix_fmt = w, h, "yuv420p"
    enc.time_base, enc.framerate = Fraction(1, 25), Fraction(25, 1)
    # One thread per encoder: this runs inside DataLoader workers, which already use every core.
    enc.thread_count = 1
    preset = preset or DEFAULT_PRESETS.get(codec)
    if codec == "h264":
        enc.options = {"qp": str(q), "preset": preset, "bframes": str(bframes), "g": str(gop), "threads": "1"}
    elif codec == "h265":
        enc.options = {"preset": preset, "x265-params": f"qp={q}:bframes={bframes}:keyint={gop}:pools=none:frame-threads=1:log-level=none"}
    else:
        enc.qmin = enc.qmax = q  # pins rate control to one quantiser
        enc.gop_size, enc.max_b_frames = gop, bframes
    dec = av.CodecContext.create(decoder, "r")
    dec.thread_count = 1
    hevc = HevcQuantisers(enc.extradata) if steps is not None and decoder == "hevc" else None
    if hevc:
        dec.copy_opaque = True  # each packet's slice QP reaches its frame (hint_for_video_frame)
    elif steps is not None and decoder in QP_MAP_CODECS:
        dec.options = {"export_side_data": "venc_params"}
    packets = []
    for i, frame in enumerate(frames):
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24").reformat(format="yuv420p", threads=1)
        vf.pts = i
        packets += enc.encode(vf)
    packets += enc.encode(None)
    if hevc:
        for p in packets:
            p.opaque = hevc.picture_qp(bytes(p))
    decoded = [f for p in packets for f in dec.decode(p)] + list(dec.decode(None))
    out = [decoded_rgb(f, SPACE_SMPTE170M, RANGE_LIMITED) for f in decoded]  # the matrix of the reformat above
    if fast is not None:
        fast += [decoded_rgb(f, SPACE_SMPTE170M, RANGE_LIMITED, exact=False) for f in decoded]
    if luma is not None:
        luma += [f.to_ndarray(format="yuv420p", threads=1)[:h] for f in decoded]
    if steps is not None:
        steps += [_decoded_step(f, codec, q) for f in decoded]
    if len(out) != len(frames):
        raise RuntimeError(f"{codec} round trip returned {len(out)} of {len(frames)} frames")
    return out


def _decoded_step(frame, codec: str, q: int) -> float:
    """A decoded frame's mean quantiser step: what the decoder exports or the HEVC slice headers
    say, as `revamp video` reads it (x264 and x265 code the reference B frames of their B pyramid a
    QP below the others), else the rule."""
    hint = hint_for_video_frame(frame, VIDEO_CODECS[codec][1])
    if hint.steps is not None:
        return float(np.mean(hint.steps))
    import av

    return frame_step(codec, q, av.video.frame.PictureType(int(frame.pict_type)).name)


def frame_step(codec: str, q: int, pict_type: str) -> float:
    """The step of a frame coded at constant quantiser ``q``. x264/x265 in --qp mode code I frames
    at QP-3 and B frames at QP+2 (ipratio 1.4, pbratio 1.3; checked against x264's exported QP
    maps in the tests); MPEG-2/MPEG-4 with qmin = qmax = q use q everywhere (quantiser_scale 2q)."""
    if VIDEO_CODECS[codec][2] == "qp":
        return float(h26x_step(q + {"I": -3, "B": 2}.get(pict_type, 0)))
    return float(mpeg_step(2 * q))


@dataclass
class VideoDegradation:
    """A short clip through a real codec; one of its frames is the sample.

    ``sample`` moves a still crop into a clip: the clean crop is the window of a random frame of the
    clip, the others follow a random global motion, so P and B frames carry real inter-prediction
    artifacts. ``motion``: "pan", whole pixels (up to ``max_motion`` a frame), or "affine", a
    camera's sub-pixel pan (up to ``max_motion``), zoom (up to 1 %) and roll (up to 0.5 degree)
    a frame, resampled bicubically: the codec then interpolates its predictions and codes
    residuals in every inter frame, as on real video (a whole-pixel pan it predicts exactly;
    docs/training/camera-motion/). ``sample_clip`` encodes real frames (natural motion). The sampled
    frame's position in the GOP is random, so I, P and B frames are all seen. Codecs in
    ``blind_codecs`` return no step (a model that should meet them blind).
    """

    codecs: dict[str, tuple[int, int]] = field(default_factory=lambda: {"h264": (27, 45), "h265": (27, 45), "mpeg2": (4, 20), "mpeg4": (4, 20)})
    frames: int = 5
    max_motion: int = 4
    blind_codecs: tuple[str, ...] = ()
    presets: dict[str, list[str]] = field(default_factory=dict)  # x264/x265 presets drawn from, per codec (default: the fast one)
    # Relative odds of each codec (default 1 each): more samples of the codec a model is weakest on.
    weights: dict[str, float] = field(default_factory=dict)
    # Multi-frame models: the sample also carries this many decoded frames on each side, aligned
    # onto it (revamp.video.neighbours), as uint8 RGB channels after its own three, and with
    # ``neighbour_quality`` their quality planes (x 255) after those; gated over ``neighbour_window``
    # (with ``neighbour_step_gate``: at a tolerance that follows the frame's step). A model's
    # UNetConfig fields of the same names (revamp.video.neighbours.NeighbourFields).
    neighbours: int = 0
    neighbour_quality: bool = False
    neighbour_window: int = 1
    neighbour_step_gate: bool = False
    motion: str = "pan"

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.sample(img, rng)[0]

    def sample(self, img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float | None]:
        if self.motion == "affine":
            k = int(rng.integers(self.frames))
            return self.sample_clip(camera_clip(img, self.frames, k, self.max_motion, rng), k, rng)
        h, w = img.shape[:2]
        m = self.max_motion
        pad = m * self.frames
        padded = np.pad(img, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
        vy, vx = rng.integers(-m, m + 1, 2)
        k = int(rng.integers(self.frames))
        clip = [padded[pad + (t - k) * vy : pad + (t - k) * vy + h, pad + (t - k) * vx : pad + (t - k) * vx + w] for t in range(self.frames)]
        return self.sample_clip(clip, k, rng)

    def sample_clip(self, clip: list[np.ndarray], k: int, rng: np.random.Generator) -> tuple[np.ndarray, float | None]:
        """Frame ``k`` of the clean frames ``clip`` after a round trip through a random codec and quantiser."""
        names = sorted(self.codecs)
        if self.weights:
            odds = np.array([float(self.weights.get(n, 1.0)) for n in names])
            codec = names[int(rng.choice(len(names), p=odds / odds.sum()))]
        else:  # the draw of configs without weights stays as it was (a resumed run goes on exactly)
            codec = names[int(rng.integers(len(names)))]
        lo, hi = self.codecs[codec]
        q = int(rng.integers(lo, hi + 1))
        presets = self.presets.get(codec)
        preset = presets[int(rng.integers(len(presets)))] if presets else None
        h, w = clip[0].shape[:2]
        even = np.pad(np.stack(clip), ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        steps: list[float] = []
        decoded = [f[:h, :w] for f in video_roundtrip(list(even), codec, q, steps=steps, preset=preset)]
        step = None if codec in self.blind_codecs else steps[k]
        if not self.neighbours:
            return decoded[k], step
        from revamp.video.neighbours import neighbour_planes

        # The quality planes and the step gate use the decoded frames' steps, known even for a codec in blind_codecs.
        around = neighbour_planes(decoded, k, self, steps=steps, codec=codec)
        planes = (around * 255 + 0.5).astype(np.uint8).transpose(1, 2, 0)
        return np.concatenate([decoded[k], planes], axis=2), step


MAX_ZOOM = 0.01  # per frame, "affine" motion
MAX_ROLL = 0.5  # degrees per frame


def camera_clip(img: np.ndarray, frames: int, k: int, max_motion: float, rng: np.random.Generator) -> list[np.ndarray]:
    """``frames`` views of ``img`` (H, W, 3) by a camera that pans by a sub-pixel step, zooms and
    rolls at a constant rate; frame ``k`` is ``img`` itself, the others are resampled bicubically
    (mirrored at the borders)."""
    h, w = img.shape[:2]
    vy, vx = rng.uniform(-max_motion, max_motion, 2)
    zoom, roll = rng.uniform(-MAX_ZOOM, MAX_ZOOM), rng.uniform(-MAX_ROLL, MAX_ROLL)
    clip = []
    for t in range(frames):
        if t == k:
            clip.append(img)
            continue
        m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), roll * (t - k), (1 + zoom) ** (t - k))
        m[:, 2] += (vx * (t - k), vy * (t - k))
        clip.append(cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101))
    return clip


@dataclass
class MixedDegradation:
    """Picks one degradation per sample with the given probabilities."""

    choices: list[tuple[float, object]]

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.sample(img, rng)[0]

    def sample(self, img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float | None]:
        probs = np.array([p for p, _ in self.choices], dtype=float)
        pick = int(rng.choice(len(probs), p=probs / probs.sum()))
        return self.choices[pick][1].sample(img, rng)


@dataclass
class SRDegradation:
    """Downscale (x2/x4), then the JPEG degradation: low-resolution archive files."""

    scale: int
    jpeg: object | None  # the compression applied after downscaling (JPEG, video or mixed)
    methods: tuple[str, ...] = ("bicubic", "area")
    blur_prob: float = 0.0

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.sample(img, rng)[0]

    def sample(self, img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float | None]:
        method = self.methods[int(rng.integers(len(self.methods)))]
        blur = float(rng.uniform(0.3, 1.2)) if rng.random() < self.blur_prob else 0.0
        small = downscale(img, self.scale, method, blur)
        return self.jpeg.sample(small, rng) if self.jpeg else (small, None)


def neighbour_settings(model: dict | None) -> dict:
    """VideoDegradation's neighbour fields that a config's ``model`` section sets (multi-frame
    models); those it leaves out keep VideoDegradation's defaults."""
    return {k: v for k, v in (model or {}).items() if k in ("neighbours", "neighbour_quality", "neighbour_window", "neighbour_step_gate")}


def build_video_degradation(video_cfg: dict, model: dict | None = None) -> VideoDegradation:
    """The ``degradation.video`` section of a config (also what real training clips go through);
    ``model``: the config's model section, whose neighbours the samples carry (multi-frame models)."""
    codecs = {k: tuple(v) for k, v in video_cfg.get("codecs", VideoDegradation().codecs).items()}
    unknown = set(codecs) - set(VIDEO_CODECS)
    if unknown:
        raise ValueError(f"unknown video codec(s) {', '.join(sorted(unknown))}; known: {', '.join(VIDEO_CODECS)}")
    presets = {k: list(v) for k, v in video_cfg.get("presets", {}).items()}
    weights = {k: float(v) for k, v in video_cfg.get("weights", {}).items()}
    if set(weights) - set(codecs) or any(v < 0 for v in weights.values()) or (weights and not any(weights.get(k, 1.0) for k in codecs)):
        raise ValueError(f"degradation.video.weights must give codecs of degradation.video.codecs non-negative odds, not all zero: {weights}")
    return VideoDegradation(codecs, int(video_cfg.get("frames", 5)), int(video_cfg.get("max_motion", 4)), tuple(video_cfg.get("blind_codecs", ())),
                            presets, weights, motion=video_cfg.get("motion", "pan"), **neighbour_settings(model))


def build_degradation(cfg: dict, scale: int = 1, model: dict | None = None):
    """Degradation from a config dict.

    ``jpeg: {...}`` and ``video: {prob, codecs, weights, frames, max_motion, motion, blind_codecs, presets}`` describe the compression (video
    replaces JPEG for a fraction ``prob`` of the samples); ``downscale: {...}`` applies to
    super-resolution models (scale 2 or 4) before compression.
    """
    unknown = set(cfg) - {"jpeg", "video", "downscale"}
    if unknown:
        raise ValueError(f"unknown degradation(s): {', '.join(sorted(unknown))}")
    choices: list[tuple[float, object]] = []
    video_cfg = cfg.get("video")
    video_prob = float(video_cfg.get("prob", 0.3)) if video_cfg else 0.0
    if video_cfg:
        choices.append((video_prob, build_video_degradation(video_cfg, model)))
    jpeg_cfg = cfg.get("jpeg")
    if jpeg_cfg is not None:
        base = JpegDegradation()  # what a key the section leaves out stays
        choices.append((1.0 - video_prob, JpegDegradation(
            quality=tuple(jpeg_cfg.get("quality", base.quality)),
            quality_power=float(jpeg_cfg.get("quality_power", base.quality_power)),
            subsampling=dict(jpeg_cfg.get("subsampling", base.subsampling)),
            double_prob=float(jpeg_cfg.get("double_prob", base.double_prob)),
        )))
    compression = None
    if len(choices) == 1:
        compression = choices[0][1]
    elif choices:
        compression = MixedDegradation(choices)
    if scale == 1:
        if compression is None:
            raise ValueError("an artifact-removal model needs a jpeg or video degradation")
        return compression
    down = cfg.get("downscale", {})
    return SRDegradation(scale, compression, tuple(down.get("methods", ("bicubic", "area"))), float(down.get("blur_prob", 0.0)))


# Test inputs (`revamp eval`, training validation): one picture at one quantiser.
# Mismatch cases for codec-aware models: the file reports a lighter compression than the damage.
RESAVE_QUALITY = 90  # jpeg-resaved:Q = JPEG at Q, cropped by 4 px (grid shift), saved again at q90
REENCODE_QP = 22  # h264-reencoded:QP = H.264 at QP, decoded and encoded again at QP 22


def compress(img: np.ndarray, kind: str, q: int) -> np.ndarray:
    """One picture through JPEG, or through a video codec as an intra-coded frame (PyAV), at quantiser q."""
    if kind == "jpeg":
        return jpeg(img, q)
    if kind == "jpeg-resaved":
        return double_jpeg(img, q, RESAVE_QUALITY, (4, 4))
    rgb = np.dstack([img] * 3) if img.ndim == 2 else img
    h, w = rgb.shape[:2]
    even = np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    if kind == "h264-reencoded":
        out = video_roundtrip(video_roundtrip([even], "h264", q), "h264", REENCODE_QP)[0][:h, :w]
    else:
        out = video_roundtrip([even], kind, q)[0][:h, :w]
    return np.round(out.astype(np.float64) @ [0.299, 0.587, 0.114]).astype(np.uint8) if img.ndim == 2 else out


def make_input(clean: np.ndarray, q: int, scale: int, kind: str = "jpeg") -> tuple[np.ndarray, np.ndarray]:
    """(reference, degraded input): for SR the reference is cropped to a multiple of the scale and
    the input is its bicubic downscale (PIL), then compressed."""
    if scale > 1:
        h, w = clean.shape[0] // scale * scale, clean.shape[1] // scale * scale
        clean = np.ascontiguousarray(clean[:h, :w])
        small = downscale(clean if clean.ndim == 3 else np.dstack([clean] * 3), scale)
        small = small[..., 0] if clean.ndim == 2 else small
    else:
        small = clean
    return clean, compress(small, kind, q)


def bicubic_up(img: np.ndarray, scale: int) -> np.ndarray:
    h, w = img.shape[:2]
    return np.asarray(Image.fromarray(img).resize((w * scale, h * scale), Image.Resampling.BICUBIC))
