"""Visualisation helpers (software rendering, no GL)."""
