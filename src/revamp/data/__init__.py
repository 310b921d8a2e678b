"""Degradations and training data."""
