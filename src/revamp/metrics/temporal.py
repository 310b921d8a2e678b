"""Temporal-coherence metrics for restored videos (lower is better for all three).

- warping error (Lai et al., ECCV 2018): mean squared difference between each output frame and
  the previous output frame warped onto it, with flow and an occlusion mask measured on the
  *reference* frames, so real motion is not counted as flicker. Values x 1000 on [0, 1] pixels.
- tOF (TecoGAN, Chu et al. 2020): mean absolute difference between the optical flow of the
  output sequence and that of the reference sequence.
- tLP (TecoGAN): mean |LPIPS(out_t, out_t-1) - LPIPS(ref_t, ref_t-1)| (AlexNet LPIPS).
Flow: OpenCV DIS (medium preset) on gray frames. Frames are H x W x 3 uint8 RGB.
"""
from __future__ import annotations

import numpy as np

from revamp.video.flow import flow_to_previous, warp

OCCLUSION_THRESHOLD = 0.05  # reference pixels whose own warp misses by more are not scored


def reference_flows(references: list[np.ndarray]) -> list[np.ndarray]:
    """Flow from each reference frame to the one before (computed once, shared by the metrics)."""
    return [flow_to_previous(references[t], references[t - 1]) for t in range(1, len(references))]


def warping_error(outputs: list[np.ndarray], references: list[np.ndarray], flows: list[np.ndarray] | None = None) -> float:
    flows = flows or reference_flows(references)
    errors = []
    for t in range(1, len(outputs)):
        flow = flows[t - 1]
        ref_t, ref_w = references[t].astype(np.float32) / 255, warp(references[t - 1].astype(np.float32) / 255, flow)
        visible = np.abs(ref_t - ref_w).mean(axis=2) < OCCLUSION_THRESHOLD
        out_t, out_w = outputs[t].astype(np.float32) / 255, warp(outputs[t - 1].astype(np.float32) / 255, flow)
        diff = ((out_t - out_w) ** 2).mean(axis=2)
        errors.append(float(diff[visible].mean()) if visible.any() else 0.0)
    return 1000 * float(np.mean(errors)) if errors else 0.0


def tof(outputs: list[np.ndarray], references: list[np.ndarray], flows: list[np.ndarray] | None = None) -> float:
    flows = flows or reference_flows(references)
    diffs = [np.abs(flow_to_previous(outputs[t], outputs[t - 1]) - flows[t - 1]).mean() for t in range(1, len(outputs))]
    return float(np.mean(diffs)) if diffs else 0.0


def tlp(outputs: list[np.ndarray], references: list[np.ndarray]) -> float:
    from revamp.metrics.lpips import lpips

    diffs = [abs(lpips(outputs[t], outputs[t - 1]) - lpips(references[t], references[t - 1])) for t in range(1, len(outputs))]
    return float(np.mean(diffs)) if diffs else 0.0
