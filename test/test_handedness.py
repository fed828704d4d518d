"""Crop handedness classifier: data, factor targets, training, runtime backends, tracker
wiring. No CNN weights ship (our CPU runs stayed at chance: docs/detector.md); the shipped
side comes from the probe (test_handedness_probe.py)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from _estimation_helpers import one_torch_thread  # noqa: E402, F401

from hand_pose_ros.detection.handedness import (  # noqa: E402
    HandednessClassifier,
    HandednessConfig,
)
from hand_pose_ros.detection.tracker import HandTracker, TrackerConfig  # noqa: E402
from hand_pose_ros.research.detection.handedness_train import (  # noqa: E402
    HandednessAugment,
    HandednessTrainSet,
    evaluate_handedness,
)

S = 64


def test_flip_mirrors_the_crop_and_swaps_the_label(open_hand_crops_dir):
    plain = HandednessTrainSet([open_hand_crops_dir], S, augment=False)
    only_flip = HandednessAugment(zoom_range=(1.0, 1.0), rotation_deg=0.0, shift=0.0,
                                  flip_prob=1.0, color=False)  # fmt: skip
    flipped = HandednessTrainSet([open_hand_crops_dir], S, augment=True, aug=only_flip)
    labels = []
    for i in range(len(plain)):
        (a, la, ka), (b, lb, kb) = plain.numpy_item(i), flipped.numpy_item(i)
        np.testing.assert_array_equal(b, a[:, ::-1])
        assert lb == 1 - la
        np.testing.assert_allclose(kb[:, 0], S - 1 - ka[:, 0], atol=1e-6)
        np.testing.assert_allclose(kb[:, 1], ka[:, 1], atol=1e-6)
        # The mirror flips the thumb-side factor and keeps the palm factor.
        fa, fb = plain[i]["factors"], flipped[i]["factors"]
        assert float(fb[0]) == 1.0 - float(fa[0]) and float(fb[1]) == float(fa[1])
        labels.append(la)
    assert set(labels) == {0, 1}  # both sides in the fixture


def test_side_is_the_xor_of_the_factors():
    from hand_pose_ros.detection.handedness_model import left_from_factors
    from hand_pose_ros.research.detection.handedness_train import thumb_clockwise

    p = torch.tensor([0.0, 0.0, 1.0, 1.0, 0.8])
    q = torch.tensor([0.0, 1.0, 0.0, 1.0, 0.3])
    torch.testing.assert_close(left_from_factors(p, q),
                               torch.tensor([0.0, 1.0, 1.0, 0.0, 0.8 * 0.7 + 0.2 * 0.3]))
    # Fingers up (wrist below the middle MCP), thumb-side MCP (index) on the image's right:
    # clockwise in image coordinates (y down). Rotation keeps it, a mirror flips it.
    kp = np.zeros((21, 2))
    kp[0], kp[9], kp[5], kp[17] = (50, 90), (50, 40), (65, 42), (35, 42)
    assert thumb_clockwise(kp)
    a = np.deg2rad(70.0)
    R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    assert thumb_clockwise(kp @ R.T)
    assert not thumb_clockwise(kp * np.array([-1.0, 1.0]))


def test_augmentation_is_deterministic_and_item_shapes(open_hand_crops_dir):
    a = HandednessTrainSet([open_hand_crops_dir], S, seed=3)
    b = HandednessTrainSet([open_hand_crops_dir], S, seed=3)
    a.epoch = b.epoch = 2
    x, y = a[5], b[5]
    assert x["image"].shape == (3, S, S) and x["image"].dtype == torch.float32
    assert torch.equal(x["image"], y["image"]) and float(x["left"]) in (0.0, 1.0)
    b.epoch = 3
    assert not torch.equal(a[5]["image"], b[5]["image"])


def test_train_set_rejects_frames(detection_frames_dir):
    with pytest.raises(ValueError, match="crops folder"):
        HandednessTrainSet([detection_frames_dir], S)


def test_training_run_lowers_the_loss_and_writes_weights(open_hand_crops_dir, tmp_path):
    """The CLI trainer overfits 24 crops (no augmentation) and writes weights + manifest
    with test metrics; a resumed run continues from the checkpoint."""
    from hand_pose_ros.cli.main import main

    out = tmp_path / "h.pt"
    argv = ["train", "handedness", "--data", str(open_hand_crops_dir), "--test-data",
            str(open_hand_crops_dir), "--out", str(out), "--input-size", str(S),
            "--batch-size", "24", "--threads", "1", "--no-augment", "--quiet",
            "--log-every", "1", "--lr", "3e-3"]  # fmt: skip
    assert main([*argv, "--steps", "30"]) == 0
    log = [json.loads(line) for line in out.with_suffix(".log.jsonl").read_text().splitlines()]
    assert log[-1]["total"] < 0.5 * log[0]["total"], (log[0], log[-1])
    manifest = json.loads(out.with_suffix(".json").read_text())
    assert manifest["config"]["input_size"] == S and manifest["training"]["steps"] == 30
    metrics = manifest["metrics"][str(open_hand_crops_dir)]
    # Eval mode (BatchNorm running statistics still lag after 30 steps): above chance.
    assert metrics["count"] == 24 and metrics["accuracy"] >= 0.7, metrics
    assert main([*argv, "--steps", "32", "--resume"]) == 0
    manifest = json.loads(out.with_suffix(".json").read_text())
    assert manifest["training"]["steps"] == 32
    # The written (fp16) weights load in the runtime, on ONNX, and match the manifest.
    clf = HandednessClassifier(out, backend="onnx", threads=1, cache_dir=tmp_path / "cache")
    onnx_metrics = evaluate_handedness(clf.left_probability, open_hand_crops_dir)
    expected = manifest["metrics"][str(open_hand_crops_dir)]
    assert onnx_metrics["log_loss"] == pytest.approx(expected["log_loss"], abs=0.01)


def test_backends_agree_and_bad_input_raises(tmp_path):
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (s, s, 3), dtype=np.uint8) for s in (90, 128, 300)]
    kwargs = {"weights": None, "cache_dir": tmp_path}
    p_torch = HandednessClassifier(backend="torch", **kwargs).left_probability(crops)
    p_onnx = HandednessClassifier(backend="onnx", threads=1, **kwargs).left_probability(crops)
    assert p_torch.shape == (3,) and ((p_torch >= 0) & (p_torch <= 1)).all()
    np.testing.assert_allclose(p_onnx, p_torch, atol=1e-5)
    clf = HandednessClassifier(backend="torch", **kwargs)
    assert clf.left_probability([]).shape == (0,)
    with pytest.raises(ValueError, match="uint8"):
        clf.left_probability([np.zeros((64, 64), np.uint8)])
    with pytest.raises(ValueError, match="backend"):
        HandednessClassifier(backend="tflite", **kwargs)
    with pytest.raises(ValueError, match="multiple of 32"):
        HandednessConfig(input_size=100)


def test_export_cli_writes_the_classifier(tmp_path, capsys):
    import onnx

    from hand_pose_ros.cli.main import main

    assert main(["export", "--model", "handedness", "--out", str(tmp_path)]) == 0
    written = json.loads(capsys.readouterr().out)
    for key in ("dynamic_batch", "fixed_batch"):
        proto = onnx.load(written[key])
        assert [o.name for o in proto.graph.output] == ["left_prob"]
        assert any(p.key == "handedness_config" for p in proto.metadata_props)


def test_tracker_takes_the_side_from_side_probability():
    """The detector says right (P(left) 0.1); the crop classifier says left (0.9): the
    classifier wins, smoothed by the tracker's momentum."""
    det = SimpleNamespace(box=np.array([10.0, 10.0, 60.0, 60.0]), score=0.9, cls=0,
                          class_probs=np.array([0.9, 0.1]), keypoints=np.full((21, 2), 30.0),
                          kp_conf=np.full(21, 0.9))  # fmt: skip
    seen = []

    def side(image, detection):
        seen.append(detection)
        return 0.9

    tracker = HandTracker(lambda image, roi=None: [det], TrackerConfig(), side_probability=side)
    frame = np.zeros((100, 100, 3), np.uint8)
    (hand,) = tracker.update(frame)
    assert hand.handedness == "left" and hand.left_prob == pytest.approx(0.9)
    assert seen == [det]
    plain = HandTracker(lambda image, roi=None: [det], TrackerConfig())
    assert plain.update(frame)[0].handedness == "right"
