"""Restoring pictures: the Python API (Restorer), bounded-memory tiling, batches of files, ONNX export."""
