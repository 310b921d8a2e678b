"""Inference defaults shared by the API, the command line and the benchmarks, defined here only
(no heavy imports: `revamp --help` reads them)."""

TILE = 512  # tile side in input pixels (a multiple of 32): bounds memory for any picture size
TILE_OVERLAP = 64  # pixels of overlap between neighbouring tiles, blended linearly
# Video frames use larger tiles, cut evenly (revamp.inference.tiling.even_tile) so that the tiles
# of a frame, run side by side on the cores, finish together (`revamp video`, `revamp bench`).
VIDEO_TILE = 768
STRENGTH = 1.0  # the model's correction as trained (Restorer's ``strength``)
# The video stabiliser's mix (revamp.video.stabilize), chosen on the training clips: best for `video`
# and for the multi-frame `video-quality` alike (bench/warp_interpolation.py; with bilinear warps the
# multi-frame model had done best at 0.45).
STABILIZE = 0.6


# The quantiser step a codec-aware model is told for a video frame, as a fraction of the step the
# file reports: the models learnt codecs mostly from panned stills, and on natural video they
# smooth too much at the reported step (tuned on the training clips: bench/video_hint_scale.py).
# A model file may carry its own for H.264 (revamp.models.files.hint_scales).
VIDEO_HINT_SCALE = 0.5
# H.265 frames are told their slice QP as it is: one QP for the whole picture, no per-block map,
# and on the training clips `default` gains most so (bench/video_hint_scale.py --codecs h265; for
# `video` and `video-quality`: docs/codec.md). A model file may carry its own
# (revamp.models.files.hint_scales).
H265_HINT_SCALE = 1.0
# The share of a codec-aware network's correction kept on a video frame it is told no quantisers
# of (none reported, or a codec it learnt blind): blind, the models over-correct natural video
# too (tuned on the training clips: bench/video_hint_scale.py). --strength multiplies it.
BLIND_VIDEO_STRENGTH = 0.9
# Re-encoding must not eat the restoration (`revamp video`'s h264/h265 outputs, revamp.video.io.output_crf):
# on Vid4, a clip restored by `video` as `revamp video` restores it (stabiliser included) and written
# with x264 (preset OUTPUT_X264_PRESET, psycho-visual tuning and adaptive quantisation off:
# revamp.video.io.open_encoder_stream) at CRF c = the input's H.264-equivalent QP - 29, within 0-12,
# loses at most 0.03 dB PSNR-Y against a lossless file (QP 27: CRF 0, x264's lossless mode, where
# CRF 1 loses 0.034 dB; QP 32: CRF 3, 0.025; QP 37: CRF 8, 0.025; QP 42: CRF 12, 0.025;
# bench/output_quality.py --model video, docs/video.md; H.265 inputs, read by their slice QPs, lose at most
# 0.020). Inputs whose quantisers are not read (VP9, AV1, ...) get OUTPUT_CRF_BLIND.
OUTPUT_CRF_MARGIN, OUTPUT_CRF_MIN, OUTPUT_CRF_MAX, OUTPUT_CRF_BLIND = 29, 0, 12, 10
# At those rates x264's `faster` preset loses at most 0.003 dB more than `medium` (often less) and
# takes about a quarter less time, for files 2-14 % larger (bench/output_quality.py --preset medium).
OUTPUT_X264_PRESET = "faster"
