"""Flow-guided temporal stabilisation of per-frame restorations.

Restoring frames one by one flickers: each frame's compression noise is different, and so is
the model's answer to it. The stabiliser blends each restored frame with the previous
stabilised one, motion-compensated by optical flow measured on the *input* frames, wherever
that motion compensation explains the input well (so occlusions, cuts and flow errors fall
back to the per-frame result):

    out_t = raw_t + strength * confidence_t * (warp(out_{t-1}) - raw_t)
    confidence_t = exp(-(|in_t - warp(in_{t-1})| / tolerance)^2), per pixel, from the inputs.
"""
from __future__ import annotations

import cv2
import numpy as np

from revamp.video.flow import flow_to_previous, upscale_flow, warp


class TemporalStabilizer:
    def __init__(self, strength: float = 0.5, tolerance: float = 0.04, scale: int = 1):
        if not 0 <= strength < 1:
            raise ValueError("stabiliser strength must be in [0, 1)")
        self.strength, self.tolerance, self.scale = strength, tolerance, scale
        self.reset()

    def reset(self) -> None:
        """Forget the previous frame (at a segment start: segments are restored independently)."""
        self.prev_input: np.ndarray | None = None
        self.prev_output: np.ndarray | None = None

    def __call__(self, frame_in: np.ndarray, restored: np.ndarray) -> np.ndarray:
        """frame_in: the decoded input (uint8 RGB); restored: float32 RGB in [0, 1] at scale x."""
        if self.prev_input is None or self.strength == 0:
            out = restored
        else:
            flow = flow_to_previous(frame_in, self.prev_input)
            cur = frame_in.astype(np.float32) / 255
            mismatch = np.abs(cur - warp(self.prev_input.astype(np.float32) / 255, flow)).mean(axis=2)
            confidence = np.exp(-((mismatch / self.tolerance) ** 2))
            if self.scale > 1:
                h, w = restored.shape[:2]
                confidence = cv2.resize(confidence, (w, h), interpolation=cv2.INTER_LINEAR)
            previous = warp(self.prev_output, upscale_flow(flow, self.scale))
            out = restored + (self.strength * confidence)[..., None] * (previous - restored)
        self.prev_input, self.prev_output = frame_in, out
        return out
