"""What the mesh estimator returns for one hand crop."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class HandObservation:
    """One hand, camera optical frame (x right, y down, z forward), right-hand canonical form.

    Attributes:
        joints_cam: (21, 3) keypoints, metres, FreiHAND order.
        verts_cam: (V, 3) mesh vertices, metres.
        uv: (21, 2) keypoint pixels in the crop given to the estimator.
        joint_confidence: (21,) heatmap peak mass in [0, 1] (1: sharp peak).
        score: mean joint confidence.
        root_depth: wrist depth used for the back-projection, metres.
        root_depth_source: ``"given"``, ``"bone_length"`` or ``"fallback"`` (estimate impossible).
    """

    joints_cam: np.ndarray
    verts_cam: np.ndarray
    uv: np.ndarray
    joint_confidence: np.ndarray
    score: float
    root_depth: float
    root_depth_source: str
