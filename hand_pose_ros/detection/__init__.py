"""Stage I: full-frame hand detection with handedness and 2D keypoints, plus tracking.

A one-stage, anchor-free, YOLOv8-pose-style detector of our own (seed 000,
FAR-HandNet), in plain torch:

- :mod:`.config`: :class:`DetectorConfig` (architecture, seed 000 options) and the
  registered variants.
- :mod:`.model`: CSPDarkNet backbone (optionally with focused linear attention blocks:
  CSPDarkNet-VT), PAN neck, decoupled head (box, right/left class, 21 keypoints with
  per-keypoint confidence). ``forward`` returns raw maps in training and decoded
  per-anchor tensors in eval / ONNX (see :data:`OUTPUT_NAMES`).
- :mod:`.flow`: RealNVP flow and the RLE residual log-likelihood loss (training only).
- :mod:`.assign`: task-aligned label assignment; KPA adds keypoint alignment (OKS).
- :mod:`.loss`: box (GIoU), class (BCE), keypoint (OKS or RLE) and keypoint-confidence terms.
- :mod:`.postprocess`: letterbox, score filter, NMS, mapping back to the frame.
- :mod:`.data`: synthetic frames -> letterboxed, augmented training samples.
- :mod:`.evaluate`: AP@0.5, handedness accuracy, PCK@0.04-0.12 of the box size, AUC.
- :mod:`.runtime`: :class:`HandDetector` (torch / onnx / tensorrt backends).
- :mod:`.tracker`: MediaPipe-like tracking (crop from the last keypoints, re-detect on
  low confidence or every N frames; stable ids and handedness).

Conventions (all modules):

- Images are RGB uint8 (H, W, 3). The network input is (B, 3, S, S) float32 in [0, 1]
  (no mean/std normalisation; the stem's BatchNorm absorbs it), a letterboxed frame.
- Coordinates are pixels, x right, y down, pixel centres at integers (OpenCV).
- Class 0 = right hand, 1 = left hand (as ``handedness`` in the synthetic labels).
- Keypoints are the 21 FreiHAND-order keypoints of :mod:`hand_ik.keypoints`.
"""

from hand_pose_ros.detection.config import DetectorConfig, create_detector_config, list_detectors

__all__ = ["DetectorConfig", "create_detector_config", "list_detectors"]
