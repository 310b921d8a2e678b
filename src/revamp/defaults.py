"""Inference defaults shared by the API, the command line and the benchmarks, defined here only
(no heavy imports: `revamp --help` reads them)."""

TILE = 512  # tile side in input pixels (a multiple of 32): bounds memory for any picture size
TILE_OVERLAP = 64  # pixels of overlap between neighbouring tiles, blended linearly
# Video frames use larger tiles, cut evenly (revamp.inference.tiling.even_tile) so that the tiles
# of a frame, run side by side on the cores, finish together (`revamp video`, `revamp bench`).
VIDEO_TILE = 768
STRENGTH = 1.0  # the model's correction as trained (Restorer's ``strength``)
STABILIZE = 0.6  # the video stabiliser's mix (revamp.video.stabilize); chosen on the training clips
