"""Shared machinery of the CPU-minded trainers (mesh estimator, detector)."""
