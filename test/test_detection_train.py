"""Detector assignment, loss, training loop, post-processing, runtime backends and bench."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from _estimation_helpers import one_torch_thread  # noqa: E402, F401


# --- assignment ---------------------------------------------------------------------------
def _assign_case(kpa: bool, kp_good_anchor: int):
    from hand_pose_ros.research.detection.assign import assign

    anchors = torch.tensor([[10.0, 10.0], [20.0, 20.0], [30.0, 30.0], [90.0, 90.0]])
    gt_box = torch.tensor([[[0.0, 0.0, 40.0, 40.0]]])
    gt_kp = torch.full((1, 1, 21, 2), 20.0)
    # Every anchor predicts the right box with the same score; keypoints are right only
    # at ``kp_good_anchor``.
    boxes = gt_box.expand(1, 4, 4).clone()
    kpts = torch.full((1, 4, 21, 2), 35.0)
    kpts[0, kp_good_anchor] = 20.0
    scores = torch.tensor([[[0.5, 0.1]] * 4])
    return assign(scores, boxes, kpts, anchors, torch.tensor([[1]]), gt_box, gt_kp,
                  torch.ones(1, 1, 21, dtype=torch.bool), torch.ones(1, 1, 21, dtype=torch.bool),
                  torch.ones(1, 1, dtype=torch.bool), topk=1, kpa=kpa)  # fmt: skip


def test_assignment_uses_boxes_inside_and_kpa_prefers_good_keypoints():
    a = _assign_case(kpa=True, kp_good_anchor=2)
    assert a.fg.tolist() == [[False, False, True, False]]  # OKS picks anchor 2
    assert a.scores[0, 2].argmax().item() == 1  # class 1 (left) target
    assert torch.allclose(a.scores[0, 2, 1], torch.tensor(1.0))  # best IoU = 1
    torch.testing.assert_close(a.keypoints[0, 2], torch.full((21, 2), 20.0))
    plain = _assign_case(kpa=False, kp_good_anchor=2)
    assert plain.fg[0, 3].item() is False  # outside the box: never positive
    assert plain.fg.sum().item() == 1


def test_centre_sampling_drops_far_anchors_inside_the_box():
    from hand_pose_ros.research.detection.assign import assign

    anchors = torch.tensor([[20.0, 20.0], [36.0, 20.0], [44.0, 20.0]])
    strides = torch.tensor([8.0, 8.0, 8.0])
    gt_box = torch.tensor([[[0.0, 0.0, 60.0, 40.0]]])  # centre (30, 20): radius 1.5 x 8 = 12
    ones = torch.ones(1, 1, 21, dtype=torch.bool)
    a = assign(torch.full((1, 3, 2), 0.5), gt_box.expand(1, 3, 4).clone(),
               torch.zeros(1, 3, 21, 2), anchors, torch.tensor([[0]]), gt_box,
               torch.zeros(1, 1, 21, 2), ones, ones, torch.ones(1, 1, dtype=torch.bool),
               kpa=False, anchor_strides=strides)  # fmt: skip
    assert a.fg.tolist() == [[True, True, False]]  # 44 - 30 = 14 > 12


def test_assignment_without_hands_is_all_background():
    from hand_pose_ros.research.detection.assign import assign

    a = assign(torch.rand(2, 5, 2), torch.rand(2, 5, 4), torch.rand(2, 5, 21, 2),
               torch.rand(5, 2), torch.zeros(2, 0, dtype=torch.long), torch.zeros(2, 0, 4),
               torch.zeros(2, 0, 21, 2), torch.zeros(2, 0, 21, dtype=torch.bool),
               torch.zeros(2, 0, 21, dtype=torch.bool),
               torch.zeros(2, 0, dtype=torch.bool))  # fmt: skip
    assert not a.fg.any() and a.scores.abs().sum() == 0


def test_giou_known_values():
    from hand_pose_ros.research.detection.loss import giou

    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [2.0, 0.0, 3.0, 1.0]])
    # IoU 1/7, hull 9, union 7 -> 1/7 - 2/9; disjoint: 0 - (3 - 2) / 3.
    torch.testing.assert_close(giou(a, b), torch.tensor([1 / 7 - 2 / 9, -1 / 3]))


# --- training ---------------------------------------------------------------------------
def _train_args(data: Path, out: Path, *extra: str) -> argparse.Namespace:
    from hand_pose_ros.research.detection import train

    parser = argparse.ArgumentParser()
    train.add_arguments(parser)
    return parser.parse_args(["--model", "far_handnet_cpu_256", "--data", str(data),
                              "--out", str(out), "--steps", "8", "--batch-size", "6",
                              "--threads", "1", "--quiet", "--no-augment", "--lr", "3e-3",
                              "--lr-milestones", *extra])  # fmt: skip


@pytest.mark.parametrize("ablation", [(), ("--no-fla", "--no-kpa", "--no-rle")])
def test_training_lowers_loss_on_a_fixed_batch(detection_frames_dir, tmp_path, ablation):
    from hand_pose_ros.research.detection.train import DetectorTrainer

    torch.manual_seed(0)
    trainer = DetectorTrainer(_train_args(detection_frames_dir, tmp_path / "w.pt", *ablation))
    assert trainer.cfg.rle is not bool(ablation)
    batch = next(trainer.batches())
    trainer.model.train()
    start = trainer.loss(batch)
    first = start.total.item()
    for _ in range(25):
        terms = trainer.loss(batch)
        trainer.optimizer.zero_grad()
        terms.total.backward()
        trainer.optimizer.step()
    last = trainer.loss(batch)
    assert last.total.item() < first - 1.0, (first, last.total.item())
    assert last.box.item() < 0.5
    if trainer.cfg.handedness_head:  # left-vs-right on the positives: starts at log(2)
        assert start.handedness.item() == pytest.approx(np.log(2.0), abs=0.05)
        assert last.handedness.item() < 0.5 * start.handedness.item()


def test_checkpoint_resume_export_and_backends(detection_frames_dir, tmp_path):
    from hand_pose_ros.detection.runtime import HandDetector
    from hand_pose_ros.research.detection.train import DetectorTrainer, write_weights

    args = _train_args(detection_frames_dir, tmp_path / "w.pt", "--no-fla")
    trainer = DetectorTrainer(args)
    trainer.train(tmp_path / "log.jsonl", quiet=True)
    assert trainer.step == 8 and trainer.ckpt_path.is_file()
    other = DetectorTrainer(args)
    other.load_checkpoint(trainer.ckpt_path)
    assert other.step == 8
    for (k, a), (_, b) in zip(trainer.model.state_dict().items(),
                              other.model.state_dict().items(), strict=True):  # fmt: skip
        torch.testing.assert_close(a, b, msg=k)
    # The ablation switch is part of the checkpoint's identity.
    with pytest.raises(ValueError, match="no_fla"):
        DetectorTrainer(_train_args(detection_frames_dir, tmp_path / "w.pt")).load_checkpoint(
            trainer.ckpt_path
        )
    manifest = write_weights(trainer, {"note": "test"})
    state = torch.load(args.out, weights_only=True)
    assert not any(k.startswith("flow.") for k in state)  # the flow is training-only
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    assert manifest["config"]["focused_attention"] is False
    assert manifest["training_data"][0]["count"] == 12
    # The manifest's config rebuilds the ablation variant; torch and ONNX agree.
    frame = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    kw = dict(weights=args.out, score_threshold=0.0, max_detections=3)
    t = HandDetector(backend="torch", **kw)
    o = HandDetector(backend="onnx", cache_dir=tmp_path / "cache", threads=1, **kw)
    assert t.cfg.focused_attention is False and o.cfg == t.cfg
    dt, do = t.detect(frame), o.detect(frame)
    assert len(dt) == len(do) == 3
    for a, b in zip(dt, do, strict=True):
        np.testing.assert_allclose(a.box, b.box, atol=0.05)
        np.testing.assert_allclose(a.keypoints, b.keypoints, atol=0.05)
        assert abs(a.score - b.score) < 1e-3


# --- post-processing ----------------------------------------------------------------------
def test_nms_keeps_the_right_boxes():
    from hand_pose_ros.detection.postprocess import nms

    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9]], float)
    scores = np.array([0.9, 0.95, 0.5, 0.3])
    # Box 1 is best; 0 and 3 overlap it (IoU 0.68, 0.61 > 0.5); 2 is apart.
    assert nms(boxes, scores, 0.5).tolist() == [1, 2]
    assert nms(boxes, scores, 0.7).tolist() == [1, 0, 2]
    assert nms(boxes[:0], scores[:0], 0.5).tolist() == []


def test_select_detections_maps_back_to_the_frame():
    from hand_pose_ros.crop import InputWarp, roi_input
    from hand_pose_ros.detection.postprocess import select_detections

    warp = InputWarp(0.5, (10.0, 20.0))
    boxes = np.array([[20.0, 30.0, 60.0, 70.0], [21.0, 31.0, 61.0, 71.0], [0, 0, 5, 5]])
    scores = np.array([[0.2, 0.9], [0.6, 0.1], [0.1, 0.1]])
    kpts = np.zeros((3, 21, 3))
    kpts[:, :, :2] = 40.0
    kpts[:, :, 2] = 0.7
    dets = select_detections(boxes, scores, kpts, warp, score_threshold=0.4)
    assert len(dets) == 1  # the duplicate and the low-score box are gone
    d = dets[0]
    np.testing.assert_allclose(d.box, [20.0, 20.0, 100.0, 100.0])
    np.testing.assert_allclose(d.keypoints, np.tile([60.0, 40.0], (21, 1)))
    assert d.cls == 1 and d.score == pytest.approx(1.0)  # 0.2 + 0.9, clipped
    np.testing.assert_allclose(d.class_probs, [0.2 / 1.1, 0.9 / 1.1])
    # A region of interest: its square maps onto the input, the outside is grey.
    image = np.zeros((100, 100, 3), np.uint8)
    image[40:60, 40:60] = 255
    out, w = roi_input(image, np.array([30.0, 30.0, 130.0, 130.0]), 50)
    np.testing.assert_allclose(w.to_frame(np.array([[0.0, 0.0], [50.0, 50.0]])),
                               [[30.0, 30.0], [130.0, 130.0]])  # fmt: skip
    assert out[10, 10].tolist() == [255, 255, 255] and out[45, 45].tolist() == [114] * 3


def test_detector_rejects_bad_input():
    from hand_pose_ros.detection.runtime import HandDetector

    with pytest.raises(ValueError, match="backend"):
        HandDetector(backend="nope", weights=None)
    det = HandDetector(weights=None)
    with pytest.raises(ValueError, match="uint8"):
        det.detect(np.zeros((10, 10), np.uint8))
    with pytest.raises(FileNotFoundError, match="train detector"):
        HandDetector(weights="/nonexistent/detector.pt")


# --- export CLI and bench ------------------------------------------------------------------
def test_export_cli_writes_a_detector(tmp_path, capsys):
    import onnx

    from hand_pose_ros.cli.main import main

    rc = main(["export", "--model", "yolo_pose_cpu_256", "--out", str(tmp_path)])
    assert rc == 0
    written = json.loads(capsys.readouterr().out)
    for key in ("dynamic_batch", "fixed_batch"):
        proto = onnx.load(written[key])
        assert [o.name for o in proto.graph.output] == ["boxes", "scores", "keypoints"]
        assert any(p.key == "detector_config" for p in proto.metadata_props)


def _tiny_weights(frames: Path, tmp_path: Path) -> Path:
    from hand_pose_ros.research.detection.train import DetectorTrainer, write_weights

    args = _train_args(frames, tmp_path / "tiny.pt", "--no-rle")
    trainer = DetectorTrainer(args)
    trainer.train(tmp_path / "log.jsonl", quiet=True)
    write_weights(trainer, None)
    return args.out


def test_bench_detector_on_frames_and_video(detection_frames_dir, tmp_path, capsys):
    import cv2

    from hand_pose_ros.cli.main import main
    from hand_pose_ros.research.synth.shards import SynthDataset

    weights = _tiny_weights(detection_frames_dir, tmp_path)
    video = tmp_path / "clip.avi"
    ds = SynthDataset(detection_frames_dir)
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for i in range(6):
        writer.write(ds.numpy_item(i)["image"][..., ::-1])
    writer.release()
    rc = main(["bench", "detector", "--json", "--backend", "torch", "--weights", str(weights),
               "--data", str(detection_frames_dir), "--data", f"video:{video}",
               "--score-threshold", "0.0", "--min-detection-score", "0.0",
               "--limit", "6", "--palm"])  # fmt: skip  (--palm alone: no palm detector rows)
    assert rc == 0
    result = json.loads(capsys.readouterr().out)
    frames_row, video_row = result["rows"]
    assert frames_row["options"] == {"fla": True, "kpa": True, "rle": False}
    for key in ("detection_rate", "ap50", "handedness_acc", "pck_0.04", "pck_0.12", "auc",
                "ms_per_frame_median"):  # fmt: skip
        assert key in frames_row
    assert 0.0 <= frames_row["pck_0.04"] <= frames_row["pck_0.12"] <= 1.0
    assert video_row["frames"] == 6 and video_row["detection_rate"] == 1.0  # thresholds 0
    assert video_row["track_ids"] >= 1 and video_row["ms_per_frame_median"] > 0
    assert video_row["handedness_source"] == "detector"
    assert 0.0 <= video_row["left_frame_share"] <= 1.0
    rc = main(["bench", "detector", "--json", "--backend", "torch", "--weights", str(weights),
               "--data", f"video:{video}", "--score-threshold", "0.0",
               "--min-detection-score", "0.0", "--handedness", "probe"])  # fmt: skip
    assert rc == 0
    (probe_row,) = json.loads(capsys.readouterr().out)["rows"]
    assert probe_row["handedness_source"] == "probe" and probe_row["frames"] == 6
    assert 0.0 <= probe_row["left_frame_share"] <= 1.0
    rc = main(["bench", "detector", "--json", "--backend", "torch", "--weights", str(weights),
               "--data", f"video:{tmp_path / 'missing.avi'}"])  # fmt: skip
    assert rc != 0 and "cannot open video" in capsys.readouterr().err


def test_bench_detector_ablation_speed_rows(capsys):
    from hand_pose_ros.cli.main import main

    rc = main(["bench", "detector", "--json", "--backend", "torch", "--repeats", "1",
               "--ablation"])  # fmt: skip
    assert rc == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    ablation = [r for r in rows if "inference_params" in r]
    assert len(ablation) == 8
    assert len({tuple(r["options"].values()) for r in ablation}) == 8
    by = {tuple(r["options"].values()): r["inference_params"] for r in ablation}
    # RLE (the flow is dropped) and KPA (assignment only) add nothing at inference; FLA does.
    assert by[(False, False, True)] == by[(False, True, False)] == by[(False, False, False)]
    assert by[(True, False, False)] > by[(False, False, False)]
    assert all(r["ms_per_frame_median"] > 0 for r in rows)


def test_bench_detector_palm_rows(detection_frames_dir, capsys):
    """The real-trained palm detector's rows (hand box from its landmarks) on labelled frames."""
    from hand_pose_ros.cli.main import main
    from hand_pose_ros.handnets.registry import WheelNotInstalledError, locate_tflite

    try:
        locate_tflite("palm_full")
    except WheelNotInstalledError as exc:
        pytest.skip(f"hand networks not available: {exc}")
    rc = main(["bench", "detector", "--json", "--no-ours", "--palm", "palm_full",
               "--data", str(detection_frames_dir), "--limit", "4"])  # fmt: skip
    assert rc == 0
    (row,) = json.loads(capsys.readouterr().out)["rows"]
    assert row["name"] == "palm_full" and row["num_images"] == 4
    assert 0.0 <= row["detection_rate"] <= 1.0 and row["false_positives_per_image"] >= 0.0
    assert row["palms_per_image"] >= 0.0 and row["ms_per_frame_median"] > 0
