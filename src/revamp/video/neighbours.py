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
"""
from __future__ import annotations

import cv2
import numpy as np

from revamp.models.contract import NEUTRAL_QUALITY
from revamp.video.flow import dis_flow, warp_onto
from revamp.video.stabilize import FLOW_LINES  # flow measured on frames shrunk to at most this many lines, as the stabiliser's

TOLERANCE = 0.06  # warped-neighbour mismatch (in [0, 1] pixels) at which its weight falls to 1/e
CUT_AGREEMENT = 0.2  # below this mean weight the neighbour is taken to be across a scene cut
QUALITY_OCTAVES = 2.0  # step ratio (log2) at which a quality plane saturates: 4x finer or coarser


def align(frame: np.ndarray, neighbour: np.ndarray, dis: cv2.DISOpticalFlow | None = None,
          window: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``neighbour`` (uint8 RGB) warped onto ``frame`` and gated: (float32 H x W x 3 in [0, 1],
    the gate weight of each pixel, H x W, from the mismatch over a ``window`` x ``window`` patch:
    the model's ``neighbour_window``); a scene cut gives ``frame`` itself and weight 0."""
    _, _, warped, weight = warp_onto(frame, neighbour, dis or dis_flow(refine=False), TOLERANCE, FLOW_LINES, window)
    base = frame.astype(np.float32) / 255
    if weight.mean() < CUT_AGREEMENT:
        return base, np.zeros(frame.shape[:2], np.float32)
    return base + weight[..., None] * (warped.astype(np.float32) / 255 - base), weight.astype(np.float32, copy=False)


def quality_value(frame_step: float | None, neighbour_step: float | None) -> float:
    """How much finer a neighbour was quantised than the frame, in [0, 1]: NEUTRAL_QUALITY for the
    same step or an unknown one, 1 for QUALITY_OCTAVES finer, 0 for that much coarser."""
    if not frame_step or not neighbour_step:
        return NEUTRAL_QUALITY
    octaves = np.log2(frame_step / neighbour_step) / QUALITY_OCTAVES
    return float(NEUTRAL_QUALITY + 0.5 * np.clip(octaves, -1, 1))


def neighbour_planes(frames: list[np.ndarray], index: int, n: int, dis: cv2.DISOpticalFlow | None = None,
                     steps: list[float | None] | None = None, quality: bool = False, window: int = 1) -> np.ndarray:
    """(6n, H, W) float32 planes of the n frames on each side of ``frames[index]`` (uint8 RGB),
    aligned and gated; a neighbour outside ``frames`` is the frame itself. With ``quality``
    (models with ``neighbour_quality``), 2n quality planes follow: each neighbour's
    ``quality_value`` from ``steps`` (each frame's mean quantiser step; None, or a None in it:
    unknown) where its pixels were taken, weighted by the gate; ``window``: align's."""
    frame = frames[index]
    planes, qualities = [], []
    for offset in [*range(-n, 0), *range(1, n + 1)]:
        j = index + offset
        if 0 <= j < len(frames) and frames[j] is not None:
            aligned, weight = align(frame, frames[j], dis, window)
            value = quality_value(steps[index], steps[j]) if steps is not None else NEUTRAL_QUALITY
        else:
            aligned, weight, value = frame.astype(np.float32) / 255, 0.0, NEUTRAL_QUALITY
        planes.append(aligned.transpose(2, 0, 1))
        if quality:
            qualities.append(np.full((1, *frame.shape[:2]), NEUTRAL_QUALITY, np.float32) + (value - NEUTRAL_QUALITY) * weight)
    planes += qualities
    return np.ascontiguousarray(np.concatenate(planes), dtype=np.float32) if planes else np.zeros((0, *frame.shape[:2]), np.float32)


def still_planes(rgb: np.ndarray, n: int, quality: bool = False) -> np.ndarray:
    """The planes of a picture with no neighbours (a still, a clip of one frame): itself, n times on
    each side (and, with ``quality``, neutral quality planes)."""
    chw = np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32)
    planes = [chw] * (2 * n) + [np.full((2 * n, *rgb.shape[:2]), NEUTRAL_QUALITY, np.float32)] * quality
    return np.concatenate(planes) if n else np.zeros((0, *rgb.shape[:2]), np.float32)
