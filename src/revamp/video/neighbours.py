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
from revamp.video.flow import dis_flow, warp_onto
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


def align(frame: np.ndarray, neighbour: np.ndarray, dis: cv2.DISOpticalFlow | None = None,
          window: int = 1, tolerance: float = TOLERANCE) -> tuple[np.ndarray, np.ndarray]:
    """``neighbour`` (uint8 RGB) warped onto ``frame`` and gated: (float32 H x W x 3 in [0, 1],
    the gate weight of each pixel, H x W, from the mismatch over a ``window`` x ``window`` patch:
    the model's ``neighbour_window``); a scene cut gives ``frame`` itself and weight 0. The scene
    cut test keeps TOLERANCE whatever the gate's: a cut does not depend on the quantiser."""
    _, _, warped, weight = warp_onto(frame, neighbour, dis or dis_flow(refine=False), tolerance, FLOW_LINES, window)
    base = frame.astype(np.float32) / 255
    # exp(-(m / t)^2) ** ((t / T)^2) = exp(-(m / T)^2): the weight at TOLERANCE.
    at_cut_tolerance = weight if tolerance == TOLERANCE else weight ** ((tolerance / TOLERANCE) ** 2)
    if at_cut_tolerance.mean() < CUT_AGREEMENT:
        return base, np.zeros(frame.shape[:2], np.float32)
    return base + weight[..., None] * (warped.astype(np.float32) / 255 - base), weight.astype(np.float32, copy=False)


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


def neighbour_planes(frames: list[np.ndarray], index: int, model: NeighbourFields, dis: cv2.DISOpticalFlow | None = None,
                     steps: list[float | None] | None = None, codec: str | None = None) -> np.ndarray:
    """The planes ``model`` takes (its ``neighbours`` n a side: (6n, H, W) float32) of the frames
    on each side of ``frames[index]`` (uint8 RGB), aligned and gated over its ``neighbour_window``;
    a neighbour outside ``frames`` is the frame itself. ``steps``: each frame's mean quantiser step
    (None, or a None in it: unknown), of ``codec``. With ``neighbour_quality``, 2n quality planes
    follow: each neighbour's ``quality_value`` where its pixels were taken, weighted by the gate;
    with ``neighbour_step_gate`` the gate's tolerance follows the frame's step."""
    frame, n = frames[index], model.neighbours
    step = steps[index] if steps is not None else None
    tolerance = gate_tolerance(codec, step) if model.neighbour_step_gate else TOLERANCE
    planes, qualities = [], []
    for offset in [*range(-n, 0), *range(1, n + 1)]:
        j = index + offset
        if 0 <= j < len(frames) and frames[j] is not None:
            aligned, weight = align(frame, frames[j], dis, model.neighbour_window, tolerance)
            value = quality_value(step, steps[j]) if steps is not None else NEUTRAL_QUALITY
        else:
            aligned, weight, value = frame.astype(np.float32) / 255, 0.0, NEUTRAL_QUALITY
        planes.append(aligned.transpose(2, 0, 1))
        if model.neighbour_quality:
            qualities.append(np.full((1, *frame.shape[:2]), NEUTRAL_QUALITY, np.float32) + (value - NEUTRAL_QUALITY) * weight)
    planes += qualities
    return np.ascontiguousarray(np.concatenate(planes), dtype=np.float32) if planes else np.zeros((0, *frame.shape[:2]), np.float32)


def still_planes(rgb: np.ndarray, n: int, quality: bool = False) -> np.ndarray:
    """The planes of a picture with no neighbours (a still, a clip of one frame): itself, n times on
    each side (and, with ``quality``, neutral quality planes)."""
    chw = np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32)
    planes = [chw] * (2 * n) + [np.full((2 * n, *rgb.shape[:2]), NEUTRAL_QUALITY, np.float32)] * quality
    return np.concatenate(planes) if n else np.zeros((0, *rgb.shape[:2]), np.float32)
