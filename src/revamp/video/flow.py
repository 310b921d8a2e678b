"""Dense optical flow (OpenCV DIS) and backward warping, shared by the temporal stabiliser and
the temporal metrics."""
from __future__ import annotations

import cv2
import numpy as np


def _gray(rgb: np.ndarray) -> np.ndarray:
    if rgb.dtype != np.uint8:
        rgb = (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def flow_to_previous(current: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """H x W x 2 flow f with current(x) ~ previous(x + f(x)) (DIS, medium preset)."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(_gray(current), _gray(previous), None)


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Samples ``image`` at x + flow(x) (bilinear, edges replicated): brings the previous frame
    onto the current one."""
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(image, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def upscale_flow(flow: np.ndarray, scale: int) -> np.ndarray:
    if scale == 1:
        return flow
    h, w = flow.shape[:2]
    return cv2.resize(flow, (w * scale, h * scale), interpolation=cv2.INTER_LINEAR) * scale
