"""Flow-guided temporal stabilisation of per-frame restorations.

Restoring frames one by one flickers: each frame's compression noise is different, and so is
the model's answer to it. The stabiliser blends each restored frame with the previous
stabilised one, motion-compensated by optical flow measured on the *input* frames, wherever
that motion compensation explains the input well (so occlusions, cuts and flow errors fall
back to the per-frame result):

    out_t = raw_t + mix * confidence_t * (warp(out_{t-1}) - raw_t)
    confidence_t = exp(-(|in_t - warp(in_{t-1})| / tolerance_t)^2), per pixel, from the inputs.

The tolerance follows the codec's noise: a mismatch that is compression noise on a heavily
quantised frame is real change on a lightly quantised one. Where the file reports its quantisers
(H.264, MPEG-2, MPEG-4) it is a fraction of the frame's mean quantiser step, else a fixed value
(``blend_tolerance``; tuned on the training clips, bench/stabilizer_tolerance.py).

Flow and confidence need only the inputs, so ``measure`` can run on another thread while the
network restores the same frame (`revamp video` does); ``blend`` then needs the restoration.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from revamp.codec import CodecHint
from revamp.video.flow import dis_flow, remap, upscale_flow, warp_maps, warp_onto

TOLERANCE = 0.04  # input mismatch (in [0, 1] pixels) at which the scene-cut test's confidence falls to 1/e
CUT_AGREEMENT = 0.1  # below this mean confidence (at TOLERANCE) the previous frame is taken to be across a scene cut
# Blending tolerance per unit of the frame's mean quantiser step (revamp.codec's steps, in 0-255
# levels; MPEG-2/MPEG-4 steps are half as large as H.264's for the same noise), within
# TOLERANCE_RANGE; BLIND_TOLERANCE where the file reports no quantisers (HEVC: FFmpeg exports none).
STEP_FRACTION = {"h264": 0.2 / 255, "mpeg2video": 0.4 / 255, "mpeg4": 0.4 / 255}
TOLERANCE_RANGE = (0.008, 0.12)
BLIND_TOLERANCE = 0.03
# Taller frames have their flow measured shrunk by an integer factor to at most this many lines
# (720p at half size: a quarter of the time; SD keeps its full size). bench/stabilizer_flow.py.
FLOW_LINES = 576


@dataclass
class Motion:
    """How frame t maps onto frame t-1, at the output's resolution."""

    maps: tuple[np.ndarray, np.ndarray]  # cv2.remap maps that warp frame t-1 onto frame t
    weight: np.ndarray  # mix * confidence, H x W float32


def blend_tolerance(codec: str | None, hint: CodecHint) -> float:
    """The blending tolerance for a frame of ``codec`` (FFmpeg's decoder name) with quantisers ``hint``."""
    if hint.steps is None or codec not in STEP_FRACTION:
        return BLIND_TOLERANCE
    return float(np.clip(STEP_FRACTION[codec] * float(np.mean(hint.steps)), *TOLERANCE_RANGE))


class TemporalStabilizer:
    def __init__(self, mix: float = 0.5, tolerance: float = BLIND_TOLERANCE, scale: int = 1, flow_lines: int | None = FLOW_LINES):
        if not 0 <= mix < 1:
            raise ValueError("the stabiliser mix must be in [0, 1)")
        self.mix, self.tolerance, self.scale, self.flow_lines = mix, tolerance, scale, flow_lines
        self.dis = dis_flow(refine=False)
        self.reset()

    def reset(self) -> None:
        """Forget the previous frame (at a segment start: segments are restored independently)."""
        self.prev_input: np.ndarray | None = None
        self.prev_output: np.ndarray | None = None

    def measure(self, frame_in: np.ndarray, tolerance: float | None = None) -> Motion | None:
        """Motion from the previous input to ``frame_in`` (uint8 RGB), or None for a first frame;
        ``tolerance``: this frame's blending tolerance (blend_tolerance), else the stabiliser's.
        Call once per frame, in order."""
        previous, self.prev_input = self.prev_input, frame_in
        if previous is None or self.mix == 0:
            return None
        flow, maps, _, weight = warp_onto(frame_in, previous, self.dis, TOLERANCE, self.flow_lines)
        if weight.mean() < CUT_AGREEMENT:
            return None  # a scene cut: nothing of the previous shot is blended in
        # exp(-(m / T)^2) ** ((T / t)^2) = exp(-(m / t)^2): the same mismatch at tolerance t.
        weight **= (TOLERANCE / (tolerance or self.tolerance)) ** 2
        weight *= self.mix
        if self.scale > 1:
            h, w = weight.shape
            weight = cv2.resize(weight, (w * self.scale, h * self.scale), interpolation=cv2.INTER_LINEAR)
            maps = warp_maps(upscale_flow(flow, self.scale))
        return Motion(maps, weight)

    def blend(self, restored: np.ndarray, motion: Motion | None) -> np.ndarray:
        """restored: float32 RGB in [0, 1] at scale x, of the frame ``motion`` was measured on."""
        out = restored
        if motion is not None and self.prev_output is not None:
            out = remap(self.prev_output, motion.maps)
            out -= restored
            out *= motion.weight[..., None]
            out += restored
        self.prev_output = out
        return out

    def __call__(self, frame_in: np.ndarray, restored: np.ndarray, tolerance: float | None = None) -> np.ndarray:
        """Measure and blend in one go (frame_in: uint8 RGB input; restored: its restoration)."""
        return self.blend(restored, self.measure(frame_in, tolerance))
