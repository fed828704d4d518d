"""Which crop to give the mesh estimator: around the detector's box or its keypoints?

On each hand the shipped detector finds (matched to a labelled hand at IoU 0.5), the mesh
estimator runs on square crops made several ways; its 2D keypoints, mapped back to the
frame, are compared with the labels: mean error and PCK at 0.1 / 0.2 of the labelled box's
longer side. Labelled left hands are mirrored in and out with their true side, so only the
crop differs between rows. ``true_kp`` (crops around the labelled keypoints) is the
reference a perfect keypoint detector would give. Prints one JSON object::

    .venv/bin/python tools/two_stage_crops.py data/synth/frames_test \\
        ../shared/realdata/handgraph_dev
"""

from __future__ import annotations

import argparse
import json
import logging

import numpy as np

#: name -> (what the crop is centred on, crop side / that box's longer side)
CROPS: dict[str, tuple[str, float]] = {
    "detector_kp_1.6": ("detector_kp", 1.6),
    "detector_kp_2.0": ("detector_kp", 2.0),
    "detector_box_1.2": ("detector_box", 1.2),
    "detector_box_1.3": ("detector_box", 1.3),
    "detector_box_1.4": ("detector_box", 1.4),
    "detector_box_1.6": ("detector_box", 1.6),
    "true_kp_1.6": ("true_kp", 1.6),
}


def crop_errors(detector, mesh, spec: str, limit: int | None, crop_size: int = 256) -> dict:
    """One row per crop way on the matched hands of a labelled frames / crops set."""
    from hand_pose_ros.crop import roi_input
    from hand_pose_ros.detection.tracker import roi_from_box, roi_from_keypoints
    from hand_pose_ros.research.detection.data import open_detection_eval_set
    from hand_pose_ros.research.detection.evaluate import match_detections

    data = open_detection_eval_set(spec)
    k_crop = np.array([[500.0, 0, crop_size / 2], [0, 500.0, crop_size / 2], [0, 0, 1]])
    errors: dict[str, list[np.ndarray]] = {name: [] for name in CROPS}
    count = len(data) if limit is None else min(limit, len(data))
    for i in range(count):
        item = data[i]
        dets = detector.detect(item.image)
        for det, j in zip(dets, match_detections(dets, item.boxes), strict=True):
            if j < 0 or item.classes[j] < 0:
                continue
            truth, box = item.keypoints[j], item.boxes[j]
            valid = item.kp_valid[j]
            left = int(item.classes[j]) == 1
            crops, warps = [], []
            for centre, scale in CROPS.values():
                if centre == "detector_kp":
                    roi = roi_from_keypoints(det.keypoints, det.kp_conf, det.box, scale)
                elif centre == "detector_box":
                    roi = roi_from_box(det.box, scale)
                else:
                    roi = roi_from_keypoints(truth, valid.astype(float), box, scale)
                crop, warp = roi_input(item.image, roi, crop_size)
                crops.append(np.ascontiguousarray(crop[:, ::-1]) if left else crop)
                warps.append(warp)
            observations = mesh.estimate_batch(crops, [k_crop] * len(crops))
            side = float(max(box[2] - box[0], box[3] - box[1]))
            for name, obs, warp in zip(CROPS, observations, warps, strict=True):
                uv = obs.uv.copy()
                if left:
                    uv[:, 0] = crop_size - 1 - uv[:, 0]
                err = np.linalg.norm(warp.to_frame(uv) - truth, axis=1) / side
                errors[name].append(err[valid])
    if not errors["true_kp_1.6"]:
        raise ValueError(f"{spec}: the detector matched no labelled hand")
    rows = {}
    for name, per_hand in errors.items():
        e = np.concatenate(per_hand)
        rows[name] = {"mean_error": round(float(e.mean()), 4),
                      "pck_0.1": round(float((e < 0.1).mean()), 4),
                      "pck_0.2": round(float((e < 0.2).mean()), 4)}  # fmt: skip
    return {"data": spec, "matched_hands": len(errors["true_kp_1.6"]), "crops": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="+", help="synthetic frames or handgraph_dev-style folders")
    parser.add_argument("--detector-weights", default="default")
    parser.add_argument("--limit", type=int, default=None, help="first N images per set")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    from hand_pose_ros.pipeline.two_stage import shipped_networks

    torch.set_num_threads(args.threads)
    logging.getLogger("hand_pose_ros").setLevel(logging.ERROR)  # root-depth fallbacks
    detector, mesh = shipped_networks(threads=args.threads,
                                      detector_weights=args.detector_weights)  # fmt: skip
    sets = [crop_errors(detector, mesh, spec, args.limit) for spec in args.data]
    out = {"mesh_estimator": mesh.model_name, "detector_weights": args.detector_weights,
           "sets": sets}  # fmt: skip
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
