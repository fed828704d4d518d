"""Inverse kinematics: 21 joints -> hand shape, 23 biomechanical DoF and wrist pose."""
