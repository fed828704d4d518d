"""Where the side of a hand can come from: the thumb-side and palm cues of our networks.

The side of a hand is ``thumb side in the image (clockwise) XOR palm faces the camera``
(docs/detector.md, "Handedness"). This measures, on held-out synthetic data, which
networks carry each factor:

- ``crops``: the mesh estimator (trained on right hands only; left hands are mirrored in)
  on each crop as it is and mirrored. ``thumb_side_acc_*``: how often the thumb side of
  its 2D keypoints matches the labelled one, per hand side. A right-hand expert that reads
  the palm from the image and assumes a right hand gets it right on right hands and
  wrong on left ones; a network that found the thumb by its shape would get both right.
- ``frames``: on the shipped detector's matched hands: the thumb side of the detector's
  keypoints (trained on both sides, so it cannot assume one), of the mesh estimator on
  the two-stage crop, and the side accuracy of three rules: the detector's class head,
  ``detector thumb side XOR mesh thumb side``, and the same with the labelled thumb side
  (an upper bound for a perfect thumb finder).

Prints one JSON object::

    .venv/bin/python tools/handedness_cues.py --crops data/synth/crops_test \\
        --frames data/synth/frames_test
"""

from __future__ import annotations

import argparse
import json
import logging

import numpy as np


def _rate(flags: list[bool]) -> float | None:
    return round(float(np.mean(flags)), 4) if flags else None


def crop_cues(mesh, spec: str, limit: int) -> dict:
    """Thumb side of the mesh estimator's keypoints on raw and mirrored synthetic crops."""
    from hand_pose_ros.crop import mirror_crop
    from hand_pose_ros.research.detection.handedness_train import thumb_clockwise
    from hand_pose_ros.research.synth.shards import SynthDataset

    data = SynthDataset(spec)
    hits: dict[str, list[bool]] = {f"{v}_{s}": [] for v in ("raw", "mirrored")
                                   for s in ("right", "left")}  # fmt: skip
    for i in range(min(limit, len(data))):
        item = data.numpy_item(i)
        side = "left" if int(item["handedness"]) else "right"
        truth = thumb_clockwise(item["kp2d"])
        image, k = item["image"], item["K"]
        mirrored, k_mirrored = mirror_crop(image, k)
        raw_obs, mirrored_obs = mesh.estimate_batch([image, mirrored], [k, k_mirrored])
        hits[f"raw_{side}"].append(thumb_clockwise(raw_obs.uv) == truth)
        hits[f"mirrored_{side}"].append(thumb_clockwise(mirrored_obs.uv) != truth)  # mirror flips
    return {"data": spec, "count": sum(len(v) for v in hits.values()),
            **{f"thumb_side_acc_{k}": _rate(v) for k, v in hits.items()}}  # fmt: skip


def frame_cues(detector, mesh, spec: str, limit: int) -> dict:
    """Thumb-side and side rules on the detector's matched hands in synthetic frames."""
    from hand_pose_ros.crop import crop_intrinsics, roi_input
    from hand_pose_ros.detection.tracker import roi_from_box
    from hand_pose_ros.pipeline.two_stage import CROP_SCALE
    from hand_pose_ros.research.detection.data import open_detection_eval_set
    from hand_pose_ros.research.detection.evaluate import match_detections
    from hand_pose_ros.research.detection.handedness_train import thumb_clockwise

    data = open_detection_eval_set(spec)
    k_frame = np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])  # uv only: any K
    rows = []
    for i in range(min(limit, len(data))):
        item = data[i]
        dets = detector.detect(item.image)
        for det, j in zip(dets, match_detections(dets, item.boxes), strict=True):
            if j < 0 or item.classes[j] < 0:
                continue
            roi = roi_from_box(det.box, CROP_SCALE)
            crop, warp = roi_input(item.image, roi, 256)  # similarity: keeps the thumb side
            obs = mesh.estimate(crop, crop_intrinsics(k_frame, warp))
            rows.append((int(item.classes[j]), thumb_clockwise(item.keypoints[j]),
                         thumb_clockwise(det.keypoints), thumb_clockwise(obs.uv),
                         float(det.class_probs[1])))  # fmt: skip
    if not rows:
        raise ValueError(f"{spec}: the detector matched no labelled hand")
    left, truth, det_cw, mesh_cw, p_left = (np.array(c) for c in zip(*rows, strict=True))
    is_left = left == 1
    return {
        "data": spec, "matched_hands": len(rows),
        "thumb_side_acc_detector": _rate(list(det_cw == truth)),
        "thumb_side_acc_mesh_right": _rate(list((mesh_cw == truth)[~is_left])),
        "thumb_side_acc_mesh_left": _rate(list((mesh_cw == truth)[is_left])),
        "side_acc_detector_head": _rate(list((p_left >= 0.5) == is_left)),
        "side_acc_detector_xor_mesh": _rate(list((det_cw != mesh_cw) == is_left)),
        "side_acc_label_thumb_xor_mesh": _rate(list((truth != mesh_cw) == is_left)),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crops", help="synthetic crops folder (held out)")
    parser.add_argument("--frames", help="synthetic frames folder (held out)")
    parser.add_argument("--detector-weights", default="default")
    parser.add_argument("--limit", type=int, default=300, help="first N crops / frames")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if not (args.crops or args.frames):
        parser.error("give --crops and/or --frames")

    import torch

    from hand_pose_ros.pipeline.two_stage import shipped_networks

    torch.set_num_threads(args.threads)
    logging.getLogger("hand_pose_ros").setLevel(logging.ERROR)  # root-depth fallbacks
    detector, mesh = shipped_networks(threads=args.threads,
                                      detector_weights=args.detector_weights)  # fmt: skip
    out: dict = {"mesh_estimator": mesh.model_name}
    if args.crops:
        out["crops"] = crop_cues(mesh, args.crops, args.limit)
    if args.frames:
        out["detector_weights"] = args.detector_weights
        out["frames"] = frame_cues(detector, mesh, args.frames, args.limit)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
