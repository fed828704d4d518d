"""Estimator runtimes: one interface, torch / ONNX Runtime / TensorRT backends."""

from hand_pose_ros.estimation.runtime.estimator import BACKENDS, MeshEstimator

__all__ = ["BACKENDS", "MeshEstimator"]
