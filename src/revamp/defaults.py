"""Inference defaults shared by the API, the command line and the benchmarks, defined here only
(no heavy imports: `revamp --help` reads them)."""

TILE = 512  # tile side in input pixels (a multiple of 32): bounds memory for any picture size
TILE_OVERLAP = 64  # pixels of overlap between neighbouring tiles, blended linearly
# Video frames use larger tiles, cut evenly (revamp.inference.tiling.even_tile) so that the tiles
# of a frame, run side by side on the cores, finish together (`revamp video`, `revamp bench`).
VIDEO_TILE = 768
STRENGTH = 1.0  # the model's correction as trained (Restorer's ``strength``)
STABILIZE = 0.6  # the video stabiliser's mix (revamp.video.stabilize); chosen on the training clips
# The quantiser step a codec-aware model is told for a video frame, as a fraction of the step the
# file reports: the models learnt codecs mostly from panned stills, and on natural video they
# smooth too much at the reported step (tuned on the training clips: bench/video_hint_scale.py).
VIDEO_HINT_SCALE = 0.5
# H.265 frames are told their slice QP as it is: one QP for the whole picture, no per-block map,
# and on the training clips the one shipped model that reads it (`default`) gains most so
# (bench/video_hint_scale.py --codecs h265; `video` learnt H.265 blind and is told nothing).
H265_HINT_SCALE = 1.0
# The share of a codec-aware network's correction kept on a video frame it is told no quantisers
# of (none reported, or a codec it learnt blind): blind, the models over-correct natural video
# too (tuned on the training clips: bench/video_hint_scale.py). --strength multiplies it.
BLIND_VIDEO_STRENGTH = 0.9
