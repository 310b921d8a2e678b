"""Dense optical flow (OpenCV DIS) and backward warping, shared by the temporal stabiliser,
multi-frame models' neighbours (revamp.video.neighbours) and the temporal metrics."""
from __future__ import annotations

import threading
from collections import deque

import cv2
import numpy as np


def _gray(rgb: np.ndarray) -> np.ndarray:
    if rgb.dtype != np.uint8:
        rgb = (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def dis_flow(refine: bool = True) -> cv2.DISOpticalFlow:
    """DIS, medium preset. ``refine=False`` drops the variational refinement and runs 16 instead
    of 25 gradient-descent iterations per patch: two thirds of the time at 720p, for a warping
    residual 1.4 % higher on Sintel (bench/stabilizer_flow.py; the stabiliser's setting, the
    metrics keep the full preset)."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    if not refine:
        dis.setVariationalRefinementIterations(0)
        dis.setGradientDescentIterations(16)
    return dis


def flow_to_previous(current: np.ndarray, previous: np.ndarray, dis: cv2.DISOpticalFlow | None = None,
                     downscale: int = 1) -> np.ndarray:
    """H x W x 2 flow f with current(x) ~ previous(x + f(x)) (DIS, medium preset unless ``dis``).
    ``downscale``: measure on frames shrunk by this integer factor and resize the flow back."""
    gray_current, gray_previous = _gray(current), _gray(previous)
    if downscale == 1:
        return (dis or dis_flow()).calc(gray_current, gray_previous, None)
    h, w = gray_current.shape
    small = (max(w // downscale, 1), max(h // downscale, 1))
    gray_current, gray_previous = (cv2.resize(g, small, interpolation=cv2.INTER_AREA) for g in (gray_current, gray_previous))
    return resize_flow((dis or dis_flow()).calc(gray_current, gray_previous, None), w, h)


_CHANNEL_MEAN = np.full((1, 3), 1 / 3, dtype=np.float32)


def warp_between(frame: np.ndarray, other: np.ndarray, dis: cv2.DISOpticalFlow, max_lines: int | None = None):
    """``other`` (uint8 RGB) warped onto ``frame`` by the flow between them, measured on frames
    shrunk by an integer factor to at most ``max_lines`` lines (None: full size). Returns (flow,
    remap maps, warped uint8 frame, mismatch): the mismatch is |frame - warped| averaged over the
    channels, per pixel, in 0-255 levels (``match_weight`` makes a gate of it)."""
    downscale = -(-frame.shape[0] // max_lines) if max_lines else 1
    flow = flow_to_previous(frame, other, dis, downscale)
    maps = warp_maps(flow)
    # Warped in uint8: its rounding (half a level) is small against any tolerance of several levels.
    warped = remap(other, maps)
    return flow, maps, warped, cv2.transform(cv2.absdiff(frame, warped).astype(np.float32), _CHANNEL_MEAN)


class Warps:
    """warp_between for one stream of frames, with one DIS (``dis_flow(refine=False)``). A
    multi-frame model's neighbours and the stabiliser warp the same pairs of input frames onto each
    other (a frame's neighbour at -1 is the stabiliser's forward motion; its neighbour at +1 the
    backward motion the stabiliser measures on the next frame), so pairs asked for with ``keep``
    are kept, the last KEEP of them, and measured once. A pair is told by the frame arrays
    themselves, which its entry holds; callers only read what they are given. Thread-safe."""

    # The stabiliser asks for frame t's pairs right after t's neighbours are aligned: (t, t-1) and
    # (t-1, t), the last but one and the last but two kept.
    KEEP = 3

    def __init__(self):
        self.dis = dis_flow(refine=False)
        self._kept: deque = deque(maxlen=self.KEEP)
        self._lock = threading.Lock()

    def __call__(self, frame: np.ndarray, other: np.ndarray, max_lines: int | None = None, keep: bool = False):
        with self._lock:
            for kept_frame, kept_other, lines, result in self._kept:
                if kept_frame is frame and kept_other is other and lines == max_lines:
                    return result
            result = warp_between(frame, other, self.dis, max_lines)
            if keep:
                self._kept.append((frame, other, max_lines, result))
            return result


def patch_mean(mismatch: np.ndarray, window: int) -> np.ndarray:
    """``mismatch`` (warp_between's) averaged over the ``window`` x ``window`` patch around each pixel."""
    return cv2.blur(mismatch, (window, window), borderType=cv2.BORDER_REPLICATE) if window > 1 else mismatch


def match_weight(mismatch: np.ndarray, tolerance: float) -> np.ndarray:
    """exp(-(mismatch / tolerance)^2) per pixel, ``tolerance`` in [0, 1] pixels."""
    return np.exp(-np.square(mismatch / (255 * tolerance)))


def resize_flow(flow: np.ndarray, width: int, height: int) -> np.ndarray:
    """The flow field of a resized frame: resampled, and its vectors scaled per axis."""
    h, w = flow.shape[:2]
    if (w, h) == (width, height):
        return flow
    out = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR)
    out[..., 0] *= width / w
    out[..., 1] *= height / h
    return out


def warp_maps(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cv2.remap's sampling maps for ``flow``: x + flow(x), one per axis."""
    h, w = flow.shape[:2]
    return np.arange(w, dtype=np.float32) + flow[..., 0], np.arange(h, dtype=np.float32)[:, None] + flow[..., 1]


# How frames are warped: bicubic. A bilinear warp by a fraction of a pixel is a low-pass filter; the
# stabiliser's forward pass, which warps its own output frame after frame, would pile that blur up
# (bench/warp_interpolation.py). Its gates warp bicubically too: bilinear ones gained on the bench's
# clips but lost on x264 `medium` files and on blind H.265 (docs/video.md, Temporal stabilisation).
INTERPOLATION = cv2.INTER_CUBIC


def remap(image: np.ndarray, maps: tuple[np.ndarray, np.ndarray], interpolation: int | None = None) -> np.ndarray:
    """``image`` sampled at ``maps`` (INTERPOLATION unless given), edges replicated."""
    interpolation = INTERPOLATION if interpolation is None else interpolation
    return cv2.remap(image, maps[0], maps[1], interpolation, borderMode=cv2.BORDER_REPLICATE)


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Samples ``image`` at x + flow(x), bilinearly: brings the previous frame onto the current one
    as the temporal metrics' convention does (the warping error of Lai et al. 2018)."""
    return remap(image, warp_maps(flow), cv2.INTER_LINEAR)


def upscale_flow(flow: np.ndarray, scale: int) -> np.ndarray:
    h, w = flow.shape[:2]
    return resize_flow(flow, w * scale, h * scale)
