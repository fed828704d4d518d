"""Our two-stage estimator's 2D keypoints against MediaPipe Hands' on a real video.

MediaPipe is the reference here, not ground truth (the video has no labels). Per frame
where MediaPipe finds a hand: the mean keypoint distance of our nearest hand over the
longer side of MediaPipe's keypoint box. Rows for ``hand_side`` auto (our handedness) and
a given side. Prints one JSON object::

    .venv/bin/python tools/video_vs_mediapipe.py ../shared/realdata/hand_video/human_hand_video.mp4
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video")
    parser.add_argument("--hand-side", choices=("right", "left"), default="right")
    args = parser.parse_args()

    import torch

    from hand_pose_ros.benchmarks.detector import video_frames
    from hand_pose_ros.pipeline.estimators import create_estimator
    from hand_pose_ros.pipeline.video_source import default_intrinsics

    torch.set_num_threads(1)
    mediapipe = create_estimator("mediapipe", max_hands=1)
    ours = {side: create_estimator("ours", backend="onnx", max_hands=2, hand_side=side)
            for side in ("auto", args.hand_side)}  # fmt: skip
    errors: dict[str, list[float]] = {side: [] for side in ours}
    sides: dict[str, list[str]] = {side: [] for side in ours}
    frames = 0
    for frame in video_frames(args.video):
        frames += 1
        h, w = frame.shape[:2]
        K = default_intrinsics(w, h)
        ref = mediapipe(frame, K)
        found = {side: est(frame, K) for side, est in ours.items()}  # trackers see every frame
        if not ref:
            continue
        ref_uv = ref[0].image_points
        box_side = float(np.ptp(ref_uv, axis=0).max())
        for side, hands in found.items():
            if not hands:
                continue
            best = min(hands, key=lambda hand: np.linalg.norm(hand.image_points.mean(0)
                                                              - ref_uv.mean(0)))  # fmt: skip
            errors[side].append(float(np.linalg.norm(best.image_points - ref_uv, axis=1).mean())
                                / box_side)  # fmt: skip
            sides[side].append(best.handedness)
    rows = [{"hand_side": side, "frames": frames, "frames_compared": len(err),
             "mean_error_over_box": float(np.mean(err)) if err else None,
             "frames_under_0.2": float(np.mean(np.array(err) < 0.2)) if err else None,
             "right_share": float(np.mean([s == "right" for s in sides[side]])) if err else None}
            for side, err in errors.items()]  # fmt: skip
    print(json.dumps({"video": args.video, "reference": "MediaPipe Hands 0.10.21", "rows": rows}))


if __name__ == "__main__":
    main()
