"""Neighbouring frames for multi-frame models: each neighbour is warped onto the frame being
restored by optical flow measured between the two (compressed) frames, and gated: where the warp
does not explain the frame (occlusions, flow errors) the frame's own pixels take its place, and
across a scene cut the whole neighbour is replaced by the frame. A model therefore never blends
content from another shot, and a missing neighbour (the first and last frames, a still picture)
looks exactly like an unhelpful one.

Planes: for offsets -n..-1, 1..n, the aligned neighbour's RGB in [0, 1], channels first, after the
codec planes of the model's input (``revamp.models.unet.UNetConfig.neighbours``).
"""
from __future__ import annotations

import cv2
import numpy as np

from revamp.video.flow import dis_flow, warp_onto
from revamp.video.stabilize import FLOW_LINES  # flow measured on frames shrunk to at most this many lines, as the stabiliser's

TOLERANCE = 0.06  # warped-neighbour mismatch (in [0, 1] pixels) at which its weight falls to 1/e
CUT_AGREEMENT = 0.2  # below this mean weight the neighbour is taken to be across a scene cut


def align(frame: np.ndarray, neighbour: np.ndarray, dis: cv2.DISOpticalFlow | None = None) -> tuple[np.ndarray, float]:
    """``neighbour`` (uint8 RGB) warped onto ``frame`` and gated: (float32 H x W x 3 in [0, 1],
    the mean gate weight); a scene cut gives ``frame`` itself and weight 0."""
    _, _, warped, weight = warp_onto(frame, neighbour, dis or dis_flow(refine=False), TOLERANCE, FLOW_LINES)
    agreement = float(weight.mean())
    base = frame.astype(np.float32) / 255
    if agreement < CUT_AGREEMENT:
        return base, 0.0
    return base + weight[..., None] * (warped.astype(np.float32) / 255 - base), agreement


def neighbour_planes(frames: list[np.ndarray], index: int, n: int, dis: cv2.DISOpticalFlow | None = None) -> np.ndarray:
    """(6n, H, W) float32 planes of the n frames on each side of ``frames[index]`` (uint8 RGB),
    aligned and gated; a neighbour outside ``frames`` is the frame itself."""
    frame = frames[index]
    planes = []
    for offset in [*range(-n, 0), *range(1, n + 1)]:
        j = index + offset
        if 0 <= j < len(frames) and frames[j] is not None:
            aligned, _ = align(frame, frames[j], dis)
        else:
            aligned = frame.astype(np.float32) / 255
        planes.append(aligned.transpose(2, 0, 1))
    return np.ascontiguousarray(np.concatenate(planes)) if planes else np.zeros((0, *frame.shape[:2]), np.float32)


def still_planes(rgb: np.ndarray, n: int) -> np.ndarray:
    """The planes of a picture with no neighbours (a still, a clip of one frame): itself, n times on each side."""
    chw = np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32)
    return np.concatenate([chw] * (2 * n)) if n else np.zeros((0, *rgb.shape[:2]), np.float32)
