"""``hand-teleop bench detector --json``: hand detector accuracy and speed (seed 000 protocol).

Rows, one per detector weights file (its options from the manifest beside it, so the
seed 000 Table 5 ablation is one row per trained variant) and data set:

- ``--data`` a synthetic frames folder or a ``handgraph_dev``-style crops folder:
  ``detection_rate``, ``ap50``, ``handedness_acc``, ``pck_0.04`` ... ``pck_0.12`` (2D, of the
  hand box side, strict: missed hands count as wrong), ``auc``, ``false_positives_per_image``
  (:func:`hand_pose_ros.research.detection.evaluate.evaluate_detections`), ``ms_per_frame_median``
  (detector call on this CPU: letterbox, network, NMS).
- ``--data video:PATH`` (no labels): the tracker on every frame: ``detection_rate`` (frames
  with a tracked hand), ``full_frame_detection_rate`` (detector alone, every frame),
  ``track_ids`` (distinct ids), ``longest_track_frac``, ``id_switches`` (a new id while a
  hand was tracked in the frame before), ``multi_hand_frames`` (frames with more than one
  tracked hand: false or duplicate tracks in a one-hand video), ``handedness_flips``,
  ``left_frame_share`` (tracked hands labelled left, of all tracked hands over the frames),
  ``full_detections_per_frame`` and ``ms_per_frame_median`` of the tracker (with
  ``--handedness probe``, the handedness probe's time included).

Without ``--data``: speed rows only (random init is fine for speed); ``--ablation`` adds one
per on/off combination of the seed 000 options, with parameter counts.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from hand_pose_ros.benchmarks.utils import machine_info
from hand_pose_ros.detection.config import create_detector_config
from hand_pose_ros.runtime.weights import WEIGHTS_DIR


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", action="append", default=None,
                        help="synthetic frames folder, handgraph_dev-style folder or "
                             "video:PATH (repeatable)")
    parser.add_argument("--weights", nargs="+", default=None,
                        help="detector weights (default: every shipped detector_*.pt)")
    parser.add_argument("--backend", choices=("torch", "onnx", "tensorrt"), default="onnx")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch / ORT threads")
    parser.add_argument("--limit", type=int, default=None, help="first N items / frames")
    parser.add_argument("--score-threshold", type=float, default=0.3)
    parser.add_argument("--palm", nargs="*", default=["palm_full"],
                        choices=("palm_full", "palm_lite"),
                        help="also rows of the real-trained palm detector(s) behind the "
                             "handtrack estimator (labelled sets; none: skip)")
    parser.add_argument("--no-ours", action="store_true",
                        help="skip our from-scratch detector rows")
    video = parser.add_argument_group("tracker on video:PATH (default: TrackerConfig's)")
    video.add_argument("--redetect-every", type=int, default=None,
                       help="a full-frame detection at least every N frames")
    video.add_argument("--max-missed", type=int, default=None,
                       help="frames a missed track coasts before it is dropped")
    video.add_argument("--roi-source", choices=("keypoints", "box"), default=None,
                       help="what the next frame's ROI is made from")
    video.add_argument("--roi-scale", type=float, default=None,
                       help="ROI side / the longer side of that box")
    video.add_argument("--handedness", choices=("detector", "probe"), default="detector",
                       help="side of each tracked hand: the detector's class, or the shipped "
                            "handedness probe on its crop (as the product with hand_side auto)")
    video.add_argument("--min-detection-score", type=float, default=None,
                       help="least full-frame score that starts (or re-finds) a track; "
                            "tracks are kept down to --score-threshold")
    parser.add_argument("--repeats", type=int, default=30, help="timed calls (speed rows)")
    parser.add_argument("--ablation", action="store_true",
                        help="speed rows for every on/off combination of the seed 000 options "
                             "(random init; RLE and KPA change training only)")


def shipped_weights() -> list[Path]:
    return sorted(WEIGHTS_DIR.glob("detector_*.pt"))


def _time_ms(fn) -> tuple[object, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, 1000 * (time.perf_counter() - t0)


def evaluate_detector(detector, spec: str, limit: int | None = None) -> dict:
    """Metrics of a :class:`~hand_pose_ros.detection.runtime.HandDetector` on a labelled set."""
    from hand_pose_ros.research.detection.data import open_detection_eval_set
    from hand_pose_ros.research.detection.evaluate import evaluate_detections

    eval_set = open_detection_eval_set(spec)
    n = len(eval_set) if limit is None else min(limit, len(eval_set))
    items, preds, times = [], [], []
    for i in range(n):
        item = eval_set[i]
        dets, ms = _time_ms(lambda item=item: detector.detect(item.image))
        items.append(item)
        preds.append(dets)
        times.append(ms)
    metrics = evaluate_detections(items, preds)
    metrics["ms_per_frame_median"] = round(float(np.median(times)), 2) if times else None
    metrics["data_kind"] = eval_set.kind
    return metrics


def evaluate_model(model, spec: str, limit: int | None = None) -> dict:
    """:func:`evaluate_detector` of an in-memory torch network (training's final metrics)."""
    from hand_pose_ros.detection.runtime import HandDetector

    return evaluate_detector(HandDetector.from_model(model), spec, limit)


def video_frames(path: str, limit: int | None = None):
    """RGB frames of a video file (FileNotFoundError if it cannot be opened)."""
    from hand_pose_ros.pipeline.video_source import VideoSource

    source = VideoSource(f"video:{path}")
    try:
        while limit is None or source.frames_read < limit:
            frame = source.read()
            if frame is None:
                break
            yield frame
    finally:
        source.close()


def track_video(detector, path: str, limit: int | None = None, side_probability=None,
                **tracker_options) -> dict:  # fmt: skip
    """Tracker and plain-detector statistics on an unlabelled video (see the module doc);
    ``side_probability``: the tracker's handedness hook (None: the detector's class);
    ``tracker_options``: :class:`TrackerConfig` fields (its defaults otherwise)."""
    from hand_pose_ros.detection.tracker import HandTracker, TrackerConfig

    # As the shipped pipeline: tracks are kept down to the detector's threshold.
    config = TrackerConfig(**{"min_tracking_score": detector.score_threshold, **tracker_options})
    tracker = HandTracker(detector.detect, config, side_probability=side_probability)
    frames = with_hand = detected = multi = 0
    lengths: dict[int, int] = {}
    labels: dict[int, str] = {}
    flips = switches = left_frames = hand_frames = 0
    prev_ids: set[int] = set()
    times = []
    for image in video_frames(path, limit):
        frames += 1
        hands, ms = _time_ms(lambda image=image: tracker.update(image))
        times.append(ms)
        detected += bool(detector.detect(image))
        with_hand += bool(hands)
        multi += len(hands) > 1
        ids = {h.track_id for h in hands}
        # A new id while a hand was already tracked in the last frame = a switch.
        switches += len(ids - prev_ids) if prev_ids else 0
        prev_ids = ids
        for h in hands:
            hand_frames += 1
            left_frames += h.handedness == "left"
            lengths[h.track_id] = lengths.get(h.track_id, 0) + 1
            if h.track_id in labels and labels[h.track_id] != h.handedness:
                flips += 1
            labels[h.track_id] = h.handedness
    if frames == 0:
        raise ValueError(f"no frames read from {path}")
    return {
        "frames": frames,
        "detection_rate": round(with_hand / frames, 4),
        "full_frame_detection_rate": round(detected / frames, 4),
        "track_ids": len(lengths),
        "longest_track_frac": round(max(lengths.values(), default=0) / frames, 4),
        "id_switches": switches,
        "multi_hand_frames": multi,
        "handedness_flips": flips,
        "handedness": sorted(set(labels.values())),
        "left_frame_share": round(left_frames / hand_frames, 4) if hand_frames else None,
        "full_detections_per_frame": round(tracker.full_detections / frames, 4),
        "ms_per_frame_median": round(float(np.median(times)), 2),
        "data_kind": "video",
    }


def _options(cfg) -> dict:
    return {"fla": cfg.focused_attention, "kpa": cfg.kpa, "rle": cfg.rle}


def speed_ms(det, repeats: int) -> float:
    """Median ms of ``det.detect`` on a fixed 640x480 random frame (after 3 warm-up calls)."""
    frame = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    for _ in range(3):
        det.detect(frame)
    times = [_time_ms(lambda: det.detect(frame))[1] for _ in range(repeats)]
    return round(float(np.median(times)), 2)


def ablation_rows(args: argparse.Namespace) -> list[dict]:
    """Speed and size of the default variant with each option combination (random init)."""
    import itertools
    import tempfile

    from hand_pose_ros.detection.model import HandDetectorNet
    from hand_pose_ros.detection.runtime import DEFAULT_DETECTOR, HandDetector

    rows = []
    for fla, kpa, rle in itertools.product((False, True), repeat=3):
        cfg = create_detector_config(DEFAULT_DETECTOR, focused_attention=fla, kpa=kpa, rle=rle)
        model = HandDetectorNet(cfg).eval()
        params = sum(p.numel() for p in model.inference_state_dict().values())
        with tempfile.TemporaryDirectory() as tmp:
            if args.backend == "torch":
                det = HandDetector.from_model(model)
            else:
                from hand_pose_ros.detection.runtime import export_detector_onnx

                onnx_path = export_detector_onnx(model, Path(tmp) / "d.onnx")
                det = HandDetector(backend=args.backend, onnx_path=onnx_path, weights=None,
                                   device=args.device, threads=args.threads)  # fmt: skip
            ms = speed_ms(det, args.repeats)
        rows.append({"name": DEFAULT_DETECTOR, "weights": "random-init", "backend": args.backend,
                     "options": {"fla": fla, "kpa": kpa, "rle": rle},
                     "inference_params": int(params), "frame": [640, 480],
                     "ms_per_frame_median": ms})  # fmt: skip
    return rows


def side_hook(args: argparse.Namespace):
    """The tracker's ``side_probability`` for ``--handedness`` (None: the detector's class)."""
    if args.handedness == "detector":
        return None
    from hand_pose_ros.detection.handedness import HandednessClassifier, crop_side_probability
    from hand_pose_ros.pipeline.two_stage import CROP_SCALE

    classifier = HandednessClassifier("default", backend=args.backend, device=args.device,
                                      threads=args.threads)  # fmt: skip
    return crop_side_probability(classifier, CROP_SCALE)


def tracker_options(args: argparse.Namespace) -> dict:
    """The tracker fields given on the command line (the others keep their defaults)."""
    given = {"redetect_every": args.redetect_every, "max_missed": args.max_missed,
             "roi_source": args.roi_source, "roi_scale": args.roi_scale,
             "min_detection_score": args.min_detection_score}  # fmt: skip
    return {k: v for k, v in given.items() if v is not None}


def run(args: argparse.Namespace) -> dict:
    import torch

    from hand_pose_ros.detection.runtime import DEFAULT_DETECTOR, HandDetector, manifest_config

    torch.set_num_threads(max(1, args.threads))
    weights: list[Path | None] = [Path(w) for w in args.weights] if args.weights else []
    weights = [] if args.no_ours else weights or shipped_weights()
    if not weights and args.data and not args.no_ours:
        raise FileNotFoundError("no detector weights shipped or given (--weights)")
    entries = [(manifest_config(w), w) for w in weights] or [
        (None, None)  # speed of the default variant, random init
    ]
    if args.no_ours:
        entries = []
    videos = any(spec.startswith("video:") for spec in args.data or [])
    side_probability = side_hook(args) if videos else None  # the same for every detector
    rows = []
    for cfg, w in entries:
        name = cfg.name if cfg is not None else DEFAULT_DETECTOR
        det = HandDetector(name, backend=args.backend, weights=w, device=args.device,
                           threads=args.threads, score_threshold=args.score_threshold)
        base = {"name": name, "weights": str(w) if w else "random-init", "backend": args.backend,
                "options": _options(det.cfg), "input_size": det.cfg.input_size}
        manifest = w.with_suffix(".json") if w else None
        if manifest is not None and manifest.is_file():
            base["training_steps"] = json.loads(manifest.read_text())["training"]["steps"]
        for spec in args.data or []:
            if spec.startswith("video:"):
                metrics = track_video(det, spec[len("video:"):], args.limit,
                                      side_probability=side_probability,
                                      **tracker_options(args))  # fmt: skip
                metrics["handedness_source"] = args.handedness
            else:
                metrics = evaluate_detector(det, spec, args.limit)
            rows.append({**base, "data": spec, **metrics})
        if not args.data:
            rows.append({**base, "frame": [640, 480],
                         "ms_per_frame_median": speed_ms(det, args.repeats)})  # fmt: skip
    if args.ablation:
        rows += ablation_rows(args)
    labelled = [spec for spec in args.data or [] if not spec.startswith("video:")]
    for palm_model in args.palm or []:
        det = PalmHandDetector(palm_model, args.backend, args.device, args.threads,
                               args.score_threshold)  # fmt: skip
        base = {"name": palm_model, "weights": "mediapipe-0.10.21 (converted)",
                "backend": args.backend, "input_size": det.graph.palm_size,
                "score_threshold": args.score_threshold,
                "hand_box": "bounds of the landmark network's 21 points on the palm's ROI"}
        for spec in labelled:
            metrics = evaluate_detector(det, spec, args.limit)
            metrics["palms_per_image"] = det.palms / max(det.images, 1)
            rows.append({**base, "data": spec, **metrics})
    return {"bench": "detector", "machine": machine_info(), "rows": rows}


class PalmHandDetector:
    """The real-trained palm detector as a hand detector for :func:`evaluate_detector`:
    each palm above ``score_threshold``, one landmark pass on its ROI, the hand box the
    bounds of the 21 landmarks, the class the landmark network's side (as seen)."""

    def __init__(self, palm_model: str, backend: str, device: str, threads: int,
                 score_threshold: float) -> None:  # fmt: skip
        from hand_pose_ros.handtrack import HandTrackConfig, create_hand_tracker

        cfg = HandTrackConfig(palm_model=palm_model, min_detection_score=score_threshold)
        self.graph = create_hand_tracker(cfg, backend=backend, device=device, threads=threads)
        self.images = self.palms = 0

    def detect(self, image: np.ndarray) -> list:
        from hand_pose_ros.detection.postprocess import Detection

        found = self.graph.detect_hands(image)
        self.images += 1
        self.palms += len(found)
        out = []
        for score, uv, presence, p_right in found:
            box = np.concatenate([uv.min(0), uv.max(0)])
            probs = np.array([p_right, 1.0 - p_right])
            out.append(Detection(box, float(score), int(p_right < 0.5), probs, uv,
                                 np.full(21, presence)))  # fmt: skip
        return out
