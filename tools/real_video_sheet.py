"""Qualitative sheet on a real video: our detector, our two-stage estimator and MediaPipe.

One row per method, one column per frame (evenly spaced): boxes and keypoints drawn on
the frame, hand side and score in the label. Our two-stage estimator appears twice: with
its own handedness (``hand_side`` auto) and with the operator's side given
(``--hand-side``, default right: the video shows a right hand). Used for
docs/real_video_sheet.png on the MIT-licensed dex-retargeting hand video
(../shared/realdata/hand_video)::

    .venv/bin/python tools/real_video_sheet.py ../shared/realdata/hand_video/human_hand_video.mp4 \
        --out docs/real_video_sheet.png
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

from hand_pose_ros.benchmarks.detector import video_frames
from hand_pose_ros.pipeline.video_source import default_intrinsics
from hand_pose_ros.viz.overlay import draw_hand_keypoints, put_label


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video")
    parser.add_argument("--out", required=True)
    parser.add_argument("--columns", type=int, default=5)
    parser.add_argument("--tile-width", type=int, default=384)
    parser.add_argument("--hand-side", choices=("right", "left"), default="right",
                        help="the side given to the second row of our estimator")
    args = parser.parse_args()

    import torch

    from hand_pose_ros.detection.runtime import HandDetector
    from hand_pose_ros.pipeline.estimators import create_estimator

    torch.set_num_threads(1)
    frames = list(video_frames(args.video))
    h, w = frames[0].shape[:2]
    K = default_intrinsics(w, h)  # as `hand-teleop run` uses for an uncalibrated video
    picks = set(np.linspace(0, len(frames) - 1, args.columns).round().astype(int).tolist())
    detector = HandDetector(backend="onnx", threads=1)
    ours = create_estimator("ours", backend="onnx", max_hands=2)
    given = f"ours, hand_side {args.hand_side}"
    ours_side = create_estimator("ours", backend="onnx", max_hands=2, hand_side=args.hand_side)
    mediapipe = create_estimator("mediapipe", max_hands=2)
    rows: dict[str, list[np.ndarray]] = {"our detector": [], "ours (detector + mesh net)": [],
                                         given: [], "MediaPipe Hands": []}  # fmt: skip
    for i, frame in enumerate(frames):  # the trackers see every frame, as in use
        hands_ours, hands_mp = ours(frame, K), mediapipe(frame, K)
        hands_side = ours_side(frame, K)
        if i not in picks:
            continue
        tile = frame.copy()
        text = [f"frame {i}: our detector"]
        for d in detector.detect(frame):
            side = ("right", "left")[d.cls]
            x0, y0, x1, y1 = (int(v) for v in d.box)
            cv2.rectangle(tile, (x0, y0), (x1, y1), (255, 255, 0), 3)
            draw_hand_keypoints(tile, d.keypoints, d.kp_conf, handedness=side)
            text.append(f"{side} {d.score:.2f}")
        rows["our detector"].append(put_label(tile, "\n".join(text)))
        for name, hands in (("ours (detector + mesh net)", hands_ours), (given, hands_side),
                            ("MediaPipe Hands", hands_mp)):  # fmt: skip
            tile = frame.copy()
            text = [f"frame {i}: {name}"]
            for hand in hands:
                draw_hand_keypoints(tile, hand.image_points, handedness=hand.handedness)
                text.append(f"{hand.handedness} {hand.score:.2f}")
            rows[name].append(put_label(tile, "\n".join(text)))
    th = round(h * args.tile_width / w)
    sheet = np.concatenate([
        np.concatenate([cv2.resize(t, (args.tile_width, th), interpolation=cv2.INTER_AREA)
                        for t in tiles], axis=1) for tiles in rows.values()], axis=0)  # fmt: skip
    cv2.imwrite(args.out, sheet[..., ::-1])
    print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]})")


if __name__ == "__main__":
    main()
