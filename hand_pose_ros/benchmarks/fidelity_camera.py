"""Teleop fidelity through the camera: the scripted demo's rendered frames -> the image
estimator -> the IK node's path (``IKStage``, tracking) -> each robot's retargeter, against
the same retargeter on the rendered hand's true pose (``bench fidelity --camera``).

Two rows per robot (``name``: ``ROBOT/camera``): ``calibration`` ``none`` (the joint
angles as estimated) and ``operator`` (the operator flexion calibration captured on the
demo's first open-hand and fist holds, as ``hand-teleop calibrate --source demo`` does;
:mod:`hand_ik.ik.flexion_calibration`). Measured on frames after those holds (by default
the script's third and fourth passes: the same poses seen from other wrist orientations):

- ``joint_error_rad``: mean |q - q_true| over the robot's joints and frames;
- ``jitter_rad_per_frame``: mean |q_t - q_t-1| (``jitter_truth_rad_per_frame``: the truth's);
- ``<pose>_flex_mean`` / ``<pose>_flex_truth``: the mean finger flexion fraction
  (``FlexionGauge``, 0 open, 1 closed) over the frames holding the ``flat``, ``spread`` and
  ``fist`` keyframes (the goal: an open hand opens the robot, a fist closes it).

The robot command is the retargeter's, before the command filter.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: Keyframes whose hold frames are scored, and their row key.
HELD_POSES = {"flat": "open", "spread": "spread", "fist": "fist"}


def estimate_demo(start: int, count: int, estimator: str = "handtrack") -> list[dict]:
    """Frames ``start`` .. ``start + count - 1`` of the demo through the estimator and
    ``IKStage`` (:class:`~hand_pose_ros.pipeline.flexion_capture.HandSolver`): per solved
    frame the true DoF, the held keyframe (or None) and the estimated shape and DoF."""
    from tqdm import tqdm

    from hand_ik.pose_sampler import keyframe
    from hand_pose_ros.pipeline.demo import DemoHand
    from hand_pose_ros.pipeline.flexion_capture import HandSolver

    demo = DemoHand()
    solve = HandSolver(estimator)
    keyframes = {name: keyframe(name) for name in HELD_POSES}
    out = []
    for i in tqdm(range(start, start + count), desc=f"demo through {estimator}", unit="frame",
                  disable=None, leave=False):  # fmt: skip
        frame = demo.frame_at(i)
        state = solve(frame.image, frame.K)
        if state is None:
            continue
        bio_true, _ = demo.bio_at(frame.stamp_s)
        held = next((n for n, k in keyframes.items() if np.abs(bio_true - k).max() < 1e-9), None)
        out.append({"bio_true": bio_true, "held": held, "betas": np.asarray(state.betas[0]),
                    "bio": np.asarray(state.bio[0])})  # fmt: skip
    return out


def camera_rows(names: list[str], urdf: Path | None, frames: list[dict], calibration,
                estimator: str) -> list[dict]:  # fmt: skip
    """The two rows per robot config (see the module docstring)."""
    from hand_ik.hand_model import load_hand_model
    from hand_ik.ik.keypoint_layer import HandRootPoser
    from hand_ik.retarget import load_retargeting_config
    from hand_ik.retarget.fidelity import FlexionGauge

    poser = HandRootPoser(load_hand_model("open"))
    rows = []
    for name in names:
        config = load_retargeting_config(name, urdf=urdf)
        robot, truth = config.build(), config.build()
        gauge = FlexionGauge(robot.robot, config.flexion)
        truth_q = np.array([truth.retarget(poser(np.zeros(10), f["bio_true"]),
                                           f["bio_true"]).positions for f in frames])  # fmt: skip
        for label, cal in (("none", None), ("operator", calibration)):
            robot.reset()
            q = []
            for f in frames:
                bio = f["bio"] if cal is None else cal.apply(f["bio"])
                q.append(robot.retarget(poser(f["betas"], bio), bio).positions)
            q = np.array(q)
            row = {"name": f"{config.name}/camera", "calibration": label, "estimator": estimator,
                   "frames": len(frames),
                   "joint_error_rad": float(np.abs(q - truth_q).mean()),
                   "jitter_rad_per_frame": float(np.abs(np.diff(q, axis=0)).mean()),
                   "jitter_truth_rad_per_frame":
                       float(np.abs(np.diff(truth_q, axis=0)).mean())}  # fmt: skip
            for pose, key in HELD_POSES.items():
                held = [k for k, f in enumerate(frames) if f["held"] == pose]
                row[f"{key}_frames"] = len(held)
                row[f"{key}_flex_mean"] = _mean_flexion(gauge, q[held]) if held else None
                row[f"{key}_flex_truth"] = _mean_flexion(gauge, truth_q[held]) if held else None
            rows.append(row)
    return rows


def _mean_flexion(gauge, qs: np.ndarray) -> float:
    """Mean finger flexion fraction over the fingers and the commands ``qs``."""
    return float(np.mean([np.mean(list(gauge(q).values())) for q in qs]))


def run_camera(names: list[str], urdf: Path | None, start: int, count: int,
               estimator: str = "handtrack") -> list[dict]:  # fmt: skip
    """Capture the operator calibration on the demo, estimate the scored frames, rows."""
    from hand_ik.ik.flexion_calibration import fit_flexion_calibration
    from hand_pose_ros.pipeline.flexion_capture import capture_poses, demo_ranges

    ranges = demo_ranges()
    if start < max(b for _, b in ranges.values()):
        raise ValueError(f"--camera-start must come after the calibration holds {ranges}")
    poses = capture_poses("demo", ranges, estimator=estimator)
    calibration = fit_flexion_calibration(poses.open, poses.fist)
    frames = estimate_demo(start, count, estimator)
    if len(frames) < 2:
        raise ValueError(f"the estimator solved {len(frames)} of {count} demo frames")
    return camera_rows(names, urdf, frames, calibration, estimator)
