"""Flow-guided temporal stabilisation of per-frame restorations.

Restoring frames one by one flickers: each frame's compression noise is different, and so is
the model's answer to it. The stabiliser blends each restored frame with its neighbours,
motion-compensated by optical flow measured on the *input* frames, wherever that motion
compensation explains the input well (so occlusions, cuts and flow errors fall back to the
per-frame result). A forward pass carries the past, a backward pass over the next
``look_ahead`` frames the future, and the output is their mean:

    fwd_t = raw_t + mix * confidence_t * (warp(fwd_{t-1}) - raw_t)
    bwd_t = raw_t + mix * confidence'_t * (warp(bwd_{t+1}) - raw_t),  bwd_{t+look_ahead} = raw
    out_t = (fwd_t + bwd_t) / 2
    confidence_t = exp(-(mismatch_t / tolerance_t)^2), per pixel, from the inputs: mismatch_t is
    |in_t - warp(in_{t-1})| averaged over the GATE_WINDOW x GATE_WINDOW patch around the pixel
    (confidence'_t likewise with in_{t+1}).

The tolerance follows the codec's noise: a mismatch that is compression noise on a heavily
quantised frame is real change on a lightly quantised one. Where the file reports its quantisers
(H.264, MPEG-2, MPEG-4) it is a fraction of the frame's mean quantiser step, for HEVC a fraction of
the square root of its slice QP's step, else a fixed value (``blend_tolerance``; tuned on the
training clips, bench/stabilizer_tolerance.py and bench/stabilizer_gate_window.py). A frame also
leans more on a neighbour quantised more finely than itself: the neighbour's weight is multiplied
by (tolerance_t / tolerance_neighbour)^QUALITY_POWER (bench/stabilizer_quality.py). The mix and
the look-ahead were chosen on the training clips too (bench/stabilizer_look_ahead.py): two frames
of look-ahead give all but a few thousandths of a dB of a backward pass over the whole clip.

Flow and confidence need only the inputs, so ``measure`` can run on another thread while the
network restores the same frame (`revamp video` does); ``push`` then takes the restoration and
hands back the frames that are final, ``look_ahead`` frames behind; ``flush`` ends a clip.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from revamp.codec import CodecHint
from revamp.defaults import STABILIZE
from revamp.video.flow import Warps, match_weight, patch_mean, remap, upscale_flow, warp_maps

TOLERANCE = 0.04  # input mismatch (in [0, 1] pixels) at which the scene-cut test's confidence falls to 1/e
CUT_AGREEMENT = 0.1  # below this mean confidence (at TOLERANCE) the previous frame is taken to be across a scene cut
# Blending tolerance per unit of the frame's mean quantiser step (revamp.codec's steps, in 0-255
# levels), within TOLERANCE_RANGE; for HEVC, whose pictures report one slice QP each (revamp.hevc),
# HEVC_ROOT_FRACTION x the square root of the step (as a fraction of 255): the training clips asked
# for a tolerance that grows more slowly with the step there. BLIND_TOLERANCE where the file
# reports no quantisers. Chosen with the stabiliser as `revamp video` runs it:
# bench/stabilizer_tolerance.py, bench/stabilizer_gate_window.py, docs/video.md.
STEP_FRACTION = {"h264": 0.2 / 255, "mpeg2video": 0.6 / 255, "mpeg4": 0.6 / 255}
HEVC_ROOT_FRACTION = 0.086
TOLERANCE_RANGE = (0.008, 0.12)
BLIND_TOLERANCE = 0.024
# The mismatch is averaged over this many pixels square (the stabiliser's ``window``) before the
# tolerance applies: the gate then answers to a patch, which compression noise moves little and a
# misregistered edge moves a lot, instead of to single noisy pixels (bench/stabilizer_gate_window.py).
GATE_WINDOW = 7
# Taller frames have their flow measured shrunk by an integer factor to at most this many lines
# (720p at half size: a quarter of the time; SD keeps its full size). bench/stabilizer_flow.py.
FLOW_LINES = 576
LOOK_AHEAD = 2  # frames of the backward pass (and of delay)
# A frame leans more on a more finely quantised neighbour (x264/x265 code I frames 3 QP finer and
# B frames 2 coarser than P frames): the neighbour's weight is multiplied by the ratio of the two
# frames' tolerances, this frame's over the neighbour's, to this power, within MAX_WEIGHT (chosen
# on the training clips: bench/stabilizer_quality.py). Blind frames share one tolerance: ratio 1.
QUALITY_POWER = 1.0
MAX_WEIGHT = 0.95


@dataclass
class Motion:
    """How one frame maps onto a neighbouring one, at the output's resolution."""

    maps: tuple[np.ndarray, np.ndarray]  # cv2.remap maps that warp the neighbour onto the frame
    weight: np.ndarray  # mix * confidence, H x W float32


@dataclass
class Pair:
    """The motion between a frame and the one before it (None: a first frame or a scene cut)."""

    forward: Motion | None  # the previous frame onto this one
    backward: Motion | None  # this frame onto the previous one


def blend_tolerance(codec: str | None, hint: CodecHint) -> float:
    """The blending tolerance for a frame of ``codec`` (FFmpeg's decoder name) with quantisers ``hint``."""
    if hint.steps is None:
        return BLIND_TOLERANCE
    if codec == "hevc":
        return root_tolerance(HEVC_ROOT_FRACTION, hint.steps)
    if codec in STEP_FRACTION:
        return step_tolerance(STEP_FRACTION[codec], hint.steps)
    return BLIND_TOLERANCE


def step_tolerance(fraction: float, steps: np.ndarray) -> float:
    """``fraction`` of a frame's mean quantiser step (0-255 levels), within TOLERANCE_RANGE."""
    return float(np.clip(fraction * float(np.mean(steps)), *TOLERANCE_RANGE))


def root_tolerance(fraction: float, steps: np.ndarray) -> float:
    """``fraction`` x the square root of a frame's mean quantiser step as a fraction of 255, within TOLERANCE_RANGE."""
    return float(np.clip(fraction * np.sqrt(float(np.mean(steps)) / 255), *TOLERANCE_RANGE))


class TemporalStabilizer:
    def __init__(self, mix: float = STABILIZE, tolerance: float = BLIND_TOLERANCE, scale: int = 1,
                 flow_lines: int | None = FLOW_LINES, look_ahead: int = LOOK_AHEAD, quality_power: float = QUALITY_POWER,
                 window: int = GATE_WINDOW, warps: Warps | None = None):
        if not 0 <= mix < 1:
            raise ValueError("the stabiliser mix must be in [0, 1)")
        self.mix, self.tolerance, self.scale, self.flow_lines, self.look_ahead = mix, tolerance, scale, flow_lines, look_ahead
        self.quality_power, self.window = quality_power, window
        self.warps = warps or Warps()  # a multi-frame model's, which has measured most of the pairs (Warps)
        self.prev_input: np.ndarray | None = None
        self.prev_tolerance = tolerance
        self.prev_output: np.ndarray | None = None  # the forward pass's last frame
        self.pending: deque = deque()  # [raw, fwd, backward motion onto it from the next frame, item], oldest first

    def reset(self) -> None:
        """Forget the previous frames (at a segment start: segments are restored independently);
        frames not yet handed back by ``flush`` are dropped."""
        self.prev_input = self.prev_output = None
        self.pending.clear()

    def measure(self, frame_in: np.ndarray, tolerance: float | None = None) -> Pair:
        """Motion between the previous input and ``frame_in`` (uint8 RGB), both ways; ``tolerance``:
        this frame's blending tolerance (blend_tolerance), else the stabiliser's. Call once per
        frame, in order."""
        tolerance = tolerance or self.tolerance
        previous, previous_tolerance = self.prev_input, self.prev_tolerance
        self.prev_input, self.prev_tolerance = frame_in, tolerance
        if previous is None or self.mix == 0:
            return Pair(None, None)
        flow, maps, mismatch = self._warp(frame_in, previous)
        if match_weight(mismatch, TOLERANCE).mean() < CUT_AGREEMENT:
            return Pair(None, None)  # a scene cut: nothing of the other shot is blended in
        forward = self._motion(flow, maps, mismatch, tolerance, previous_tolerance)
        if not self.look_ahead:
            return Pair(forward, None)
        flow, maps, mismatch = self._warp(previous, frame_in)
        return Pair(forward, self._motion(flow, maps, mismatch, previous_tolerance, tolerance))

    def _warp(self, frame: np.ndarray, other: np.ndarray):
        """(flow, maps, mismatch over the gate's window) of ``other`` warped onto ``frame``."""
        flow, maps, _, mismatch = self.warps(frame, other, self.flow_lines)
        return flow, maps, patch_mean(mismatch, self.window)

    def _motion(self, flow: np.ndarray, maps, mismatch: np.ndarray, tolerance: float, neighbour_tolerance: float) -> Motion:
        weight = match_weight(mismatch, tolerance)
        quality = (tolerance / neighbour_tolerance) ** self.quality_power
        weight *= self.mix * quality
        if quality > 1:
            np.minimum(weight, MAX_WEIGHT, out=weight)
        if self.scale > 1:
            h, w = weight.shape
            weight = cv2.resize(weight, (w * self.scale, h * self.scale), interpolation=cv2.INTER_LINEAR)
            maps = warp_maps(upscale_flow(flow, self.scale))
        return Motion(maps, weight)

    def push(self, restored: np.ndarray, pair: Pair, item=None) -> list:
        """restored: float32 RGB in [0, 1] at scale x, of the frame ``pair`` was measured on; ``item``:
        anything to hand back with it (its timestamps). Returns the (frame, item) pairs now final,
        oldest first: none until ``look_ahead`` frames have followed a frame."""
        forward = _blend(restored, self.prev_output, pair.forward) if self.prev_output is not None else restored
        self.prev_output = forward
        if self.pending:
            self.pending[-1][2] = pair.backward
        self.pending.append([restored, forward, None, item])
        done = []
        while len(self.pending) > self.look_ahead:
            done.append(self._finish())
        return done

    def flush(self) -> list:
        """The frames still held back (the end of a clip or segment), oldest first."""
        done = [self._finish() for _ in range(len(self.pending))]
        self.reset()
        return done

    def _finish(self) -> tuple[np.ndarray, object]:
        """The oldest pending frame, final: its backward pass runs over the frames held after it."""
        window = list(self.pending)[: self.look_ahead + 1]
        _, forward, _, item = self.pending.popleft()
        if not self.look_ahead:
            return forward, item
        backward = window[-1][0]
        for raw, _, motion, _ in reversed(window[:-1]):
            backward = _blend(raw, backward, motion)
        out = forward + backward  # new memory: both may be arrays still held
        out *= 0.5
        return out, item

    def __call__(self, frame_in: np.ndarray, restored: np.ndarray, tolerance: float | None = None) -> list:
        """Measure and push in one go (frame_in: uint8 RGB input; restored: its restoration)."""
        return self.push(restored, self.measure(frame_in, tolerance))


def _blend(restored: np.ndarray, neighbour: np.ndarray, motion: Motion | None) -> np.ndarray:
    """``restored`` with ``neighbour`` blended in where ``motion`` trusts it: a new array, or
    ``restored`` itself where there is no motion (callers never write into either)."""
    if motion is None:
        return restored
    out = remap(neighbour, motion.maps)
    out -= restored
    out *= motion.weight[..., None]
    out += restored
    return out


def stabilize_clip(stabilizer: TemporalStabilizer, inputs: list[np.ndarray], restored: list[np.ndarray],
                   tolerances: list[float | None] | None = None) -> list[np.ndarray]:
    """A whole clip through ``stabilizer`` (uint8 RGB inputs, their float32 restorations)."""
    out = []
    for frame_in, raw, tolerance in zip(inputs, restored, tolerances or [None] * len(inputs)):
        out += [frame for frame, _ in stabilizer(frame_in, raw, tolerance)]
    return out + [frame for frame, _ in stabilizer.flush()]
