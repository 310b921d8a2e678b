"""Measuring: image and video evaluation, the results tables, classical baselines, published anchors, speed."""
