"""Neighbouring frames for multi-frame models: each neighbour is warped onto the frame being
restored by optical flow measured between the two (compressed) frames, and gated: where the warp
does not explain the frame (occlusions, flow errors) the frame's own pixels take its place, and
across a scene cut the whole neighbour is replaced by the frame. A model therefore never blends
content from another shot, and a missing neighbour (the first and last frames, a still picture)
looks exactly like an unhelpful one.

Planes: for offsets -n..-1, 1..n, the aligned neighbour's RGB in [0, 1], channels first, after the
codec planes of the model's input (``revamp.models.unet.UNetConfig.neighbours``). Models with
``neighbour_quality`` then get one plane per neighbour that says how much finer it was quantised
than the frame (``quality_value``) where its pixels were taken: the frames of a GOP differ by up to
a factor of two in step, and a finer neighbour is worth more than a coarser one.

The gate's tolerance is fixed (TOLERANCE), or for models with ``neighbour_step_gate`` follows the
frame's quantiser step (``gate_tolerance``): a mismatch that is compression noise on a coarsely
quantised frame is real change on a finely quantised one.
"""
from __future__ import annotations

from typing import Protocol

import cv2
import numpy as np

from revamp.models.contract import NEUTRAL_QUALITY
from revamp.video.flow import Warps, match_weight, patch_mean
from revamp.video.stabilize import FLOW_LINES  # flow measured on frames shrunk to at most this many lines, as the stabiliser's

TOLERANCE = 0.06  # warped-neighbour mismatch (in [0, 1] pixels) at which its weight falls to 1/e
CUT_AGREEMENT = 0.2  # below this mean weight the neighbour is taken to be across a scene cut
QUALITY_OCTAVES = 2.0  # step ratio (log2) at which a quality plane saturates: 4x finer or coarser
# The step gate's tolerance: GATE_FRACTION[codec] x (mean step / 255)^GATE_POWER within GATE_RANGE
# (steps as revamp.codec reports them). Fitted on the training clips with the plain mean of a frame
# and its four aligned neighbours (bench/neighbour_gate.py): the best fixed tolerance grows from
# about 0.02 at H.264 QP22 to 0.11 at QP42, and TOLERANCE costs up to 1 dB at low QPs.
GATE_FRACTION = {"h264": 0.23, "h265": 0.23, "mpeg2": 0.39, "mpeg4": 0.39}
GATE_POWER = 0.75
GATE_RANGE = (0.008, 0.15)


class NeighbourFields(Protocol):
    """How a multi-frame model takes its neighbours: its UNetConfig's fields (the training
    degradation, revamp.data.degrade.VideoDegradation, carries the same)."""

    neighbours: int
    neighbour_quality: bool
    neighbour_window: int
    neighbour_step_gate: bool


def align(frame: np.ndarray, neighbour: np.ndarray, warps: Warps | None = None,
          window: int = 1, tolerance: float = TOLERANCE) -> tuple[np.ndarray, np.ndarray]:
    """``neighbour`` (uint8 RGB) warped onto ``frame`` and gated: (float32 H x W x 3 in [0, 1],
    the gate weight of each pixel, H x W, from the mismatch over a ``window`` x ``window`` patch:
    the model's ``neighbour_window``); a scene cut gives ``frame`` itself and weight 0. The scene
    cut test keeps TOLERANCE whatever the gate's: a cut does not depend on the quantiser."""
    planes = np.empty((3, *frame.shape[:2]), np.float32)
    weight = _align_into(planes, _planes(frame), frame, neighbour, warps or Warps(), window, tolerance)
    return planes.transpose(1, 2, 0), weight


def _planes(rgb: np.ndarray) -> np.ndarray:
    """uint8 H x W x 3 -> float32 3 x H x W in [0, 1]."""
    out = np.empty((3, *rgb.shape[:2]), np.float32)
    for c, plane in enumerate(cv2.split(rgb)):
        np.divide(plane, np.float32(255), out=out[c], dtype=np.float32)
    return out


def _align_into(out: np.ndarray, base: np.ndarray, frame: np.ndarray, neighbour: np.ndarray, warps: Warps,
                window: int, tolerance: float, keep: bool = False) -> np.ndarray:
    """align's work, written channels first into ``out`` (3 x H x W) with ``base``, the frame's
    _planes; returns the gate weight. Plane by plane, in place: at 720p the float arithmetic
    costs more than the flow itself. ``keep``: ``warps`` keeps the pair (Warps)."""
    _, _, warped, mismatch = warps(frame, neighbour, FLOW_LINES, keep)
    mismatch = patch_mean(mismatch, window)
    weight = match_weight(mismatch, tolerance)
    if (weight if tolerance == TOLERANCE else match_weight(mismatch, TOLERANCE)).mean() < CUT_AGREEMENT:
        out[...] = base
        return np.zeros(frame.shape[:2], np.float32)
    for c, plane in enumerate(cv2.split(warped)):  # base + weight * (warped - base)
        channel = out[c]
        np.divide(plane, np.float32(255), out=channel, dtype=np.float32)
        channel -= base[c]
        channel *= weight
        channel += base[c]
    return weight


def quality_value(frame_step: float | None, neighbour_step: float | None) -> float:
    """How much finer a neighbour was quantised than the frame, in [0, 1]: NEUTRAL_QUALITY for the
    same step or an unknown one, 1 for QUALITY_OCTAVES finer, 0 for that much coarser."""
    if not frame_step or not neighbour_step:
        return NEUTRAL_QUALITY
    octaves = np.log2(frame_step / neighbour_step) / QUALITY_OCTAVES
    return float(NEUTRAL_QUALITY + 0.5 * np.clip(octaves, -1, 1))


def gate_tolerance(codec: str | None, step: float | None) -> float:
    """The step gate's tolerance for a frame of ``codec`` (revamp.codec.CodecHint's names) whose
    mean quantiser step is ``step`` (None: unknown, TOLERANCE)."""
    if not step or codec not in GATE_FRACTION:
        return TOLERANCE
    return float(np.clip(GATE_FRACTION[codec] * (step / 255) ** GATE_POWER, *GATE_RANGE))


def neighbour_planes(frames: list[np.ndarray], index: int, model: NeighbourFields, warps: Warps | None = None,
                     steps: list[float | None] | None = None, codec: str | None = None) -> np.ndarray:
    """The planes ``model`` takes (its ``neighbours`` n a side: (6n, H, W) float32) of the frames
    on each side of ``frames[index]`` (uint8 RGB), aligned and gated over its ``neighbour_window``;
    a neighbour outside ``frames`` is the frame itself. ``steps``: each frame's mean quantiser step
    (None, or a None in it: unknown), of ``codec``. With ``neighbour_quality``, 2n quality planes
    follow: each neighbour's ``quality_value`` where its pixels were taken, weighted by the gate;
    with ``neighbour_step_gate`` the gate's tolerance follows the frame's step. ``warps``: the
    stream's Warps (they keep the pairs at -1 and +1 for the stabiliser)."""
    frame, n = frames[index], model.neighbours
    step = steps[index] if steps is not None else None
    tolerance = gate_tolerance(codec, step) if model.neighbour_step_gate else TOLERANCE
    offsets = [*range(-n, 0), *range(1, n + 1)]
    out = np.empty((len(offsets) * (3 + model.neighbour_quality), *frame.shape[:2]), np.float32)
    if not offsets:
        return out
    base, warps = _planes(frame), warps or Warps()
    for k, offset in enumerate(offsets):
        j = index + offset
        if 0 <= j < len(frames) and frames[j] is not None:
            weight = _align_into(out[3 * k : 3 * k + 3], base, frame, frames[j], warps, model.neighbour_window, tolerance, abs(offset) == 1)
            value = quality_value(step, steps[j]) if steps is not None else NEUTRAL_QUALITY
        else:
            out[3 * k : 3 * k + 3], weight, value = base, 0.0, NEUTRAL_QUALITY
        if model.neighbour_quality:  # NEUTRAL_QUALITY + (value - NEUTRAL_QUALITY) * weight
            quality = out[3 * len(offsets) + k]
            quality[...] = weight
            quality *= value - NEUTRAL_QUALITY
            quality += NEUTRAL_QUALITY
    return out


def still_planes(rgb: np.ndarray, n: int, quality: bool = False) -> np.ndarray:
    """The planes of a picture with no neighbours (a still, a clip of one frame): itself, n times on
    each side (and, with ``quality``, neutral quality planes)."""
    chw = np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32)
    planes = [chw] * (2 * n) + [np.full((2 * n, *rgb.shape[:2]), NEUTRAL_QUALITY, np.float32)] * quality
    return np.concatenate(planes) if n else np.zeros((0, *rgb.shape[:2]), np.float32)
