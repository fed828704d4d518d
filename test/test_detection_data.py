"""Detector data: letterbox, augmented training samples, collation, evaluation sets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import realdata_path

from hand_pose_ros.crop import letterbox, unletterbox_points
from hand_pose_ros.research.detection.data import (
    DetectorAugment,
    DetectorTrainSet,
    collate_detection,
    open_detection_eval_set,
)

torch.set_num_threads(1)
S = 64  # network input side of these tests (the frames are 160 x 120)


@pytest.fixture(scope="module")
def frames_dir(detection_frames_dir):
    return detection_frames_dir


def _flip_only() -> DetectorAugment:
    return DetectorAugment(scale_range=(1.0, 1.0), rotation_deg=0.0, hand_anchor_prob=0.0,
                           close_up_prob=0.0, shift=0.0, flip_prob=1.0, hsv_gain=(0.0, 0.0, 0.0),
                           contrast=0.0, brightness=0.0, blur_prob=0.0, gray_prob=0.0)  # fmt: skip


@pytest.mark.parametrize("hw,size", [((120, 160), 64), ((480, 640), 256), ((50, 30), 96)])
def test_letterbox_maps_points_exactly(hw, size):
    h, w = hw
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, [w - 1, h - 1], (50, 2))
    out, scale, pad = letterbox(np.zeros((h, w, 3), np.uint8), size)
    assert out.shape == (size, size, 3) and out.dtype == np.uint8
    assert scale == pytest.approx(size / max(h, w))
    back = unletterbox_points(pts * scale + np.asarray(pad), scale, pad)
    assert np.abs(back - pts).max() < 1e-4
    # The content agrees with the map: a bright square's centroid lands where it maps to.
    img = np.zeros((h, w, 3), np.uint8)
    c = np.array([w // 2, h // 2])
    img[c[1] - 4 : c[1] + 5, c[0] - 4 : c[0] + 5] = 255
    out, scale, pad = letterbox(img, size)
    padding = letterbox(np.zeros((h, w, 3), np.uint8), size)[0][..., 0] == 114
    g = np.where(padding, 0.0, out[..., 0].astype(np.float64))
    ys, xs = np.mgrid[:size, :size]
    centroid = np.array([(g * xs).sum(), (g * ys).sum()]) / g.sum()
    np.testing.assert_allclose(centroid, c * scale + np.asarray(pad), atol=0.15)
    # Grey padding on the short side.
    if h < w:
        assert (out[0] == 114).all() and (out[-1] == 114).all()


def test_augmented_keypoints_stay_on_their_hand(frames_dir):
    ds = DetectorTrainSet([frames_dir], S, augment=True, seed=3)
    kept = 0
    for epoch in range(3):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            item = ds[i]
            assert item["image"].shape == (3, S, S) and item["image"].dtype == torch.float32
            assert 0.0 <= float(item["image"].min()) and float(item["image"].max()) <= 1.0
            boxes, kp, valid = item["boxes"], item["keypoints"], item["kp_valid"]
            assert ((boxes >= 0) & (boxes <= S)).all()
            assert (boxes[:, 2:] - boxes[:, :2] >= 4).all()
            assert not (item["kp_visible"] & ~valid).any()
            assert set(item["classes"].tolist()) <= {0, 1}
            for b, p, v in zip(boxes, kp, valid, strict=True):
                p = p[v]
                assert ((p >= b[:2] - 2) & (p <= b[2:] + 2)).all()
                kept += 1
    assert kept >= 10


def test_flip_swaps_handedness_and_mirrors(frames_dir):
    plain = DetectorTrainSet([frames_dir], S, augment=False)
    flipped = DetectorTrainSet([frames_dir], S, augment=True, aug=_flip_only())
    swapped = 0
    for i in range(len(plain)):
        a, b = plain.numpy_item(i), flipped.numpy_item(i)
        ta, tb = a["targets"], b["targets"]
        diff = np.abs(a["image"][:, ::-1].astype(np.float64) - b["image"]).mean()
        assert diff < 3.0
        assert len(ta) == len(tb)
        np.testing.assert_array_equal(tb.classes, 1 - ta.classes)
        np.testing.assert_allclose(tb.keypoints[..., 0], S - 1 - ta.keypoints[..., 0], atol=1e-3)
        np.testing.assert_allclose(tb.keypoints[..., 1], ta.keypoints[..., 1], atol=1e-3)
        np.testing.assert_allclose(tb.boxes[:, [0, 2]], S - 1 - ta.boxes[:, [2, 0]], atol=1.01)
        swapped += len(ta)
    assert swapped >= 3


def test_close_up_fills_the_input_with_one_hand(frames_dir):
    """A close-up makes a random hand's box side the requested fraction of the input
    (capped by the zoom limit), centred; boxes and keypoints follow the same warp."""
    aug = DetectorAugment(scale_range=(1.0, 1.0), rotation_deg=0.0, close_up_prob=1.0,
                          close_up_side=(0.8, 0.8), close_up_max_zoom=100.0, shift=0.0,
                          flip_prob=0.0)  # fmt: skip
    ds = DetectorTrainSet([frames_dir], S, augment=True, aug=aug)
    sides = []
    for i in range(len(ds)):
        t = ds.numpy_item(i)["targets"]
        if not len(t):
            continue
        side = np.maximum(t.boxes[:, 2] - t.boxes[:, 0], t.boxes[:, 3] - t.boxes[:, 1])
        centre = (t.boxes[:, :2] + t.boxes[:, 2:]) / 2
        near = np.abs(centre - (S - 1) / 2).max(1) < 3.0  # the chosen hand is centred
        assert near.any()
        sides.append(float(side[near].max()))
        for b, p, v in zip(t.boxes, t.keypoints, t.kp_valid, strict=True):
            assert ((p[v] >= b[:2] - 2) & (p[v] <= b[2:] + 2)).all()
    assert len(sides) >= 3
    # Boxes are clipped to the input; an unclipped 0.8 * S box fits inside it.
    np.testing.assert_allclose(sides, 0.8 * S, atol=1.5)
    capped = DetectorTrainSet([frames_dir], S, augment=True,
                              aug=DetectorAugment(**{**aug.__dict__, "close_up_max_zoom": 0.1}))
    small = [np.maximum(*(t.boxes[:, 2:] - t.boxes[:, :2]).T).max()
             for t in (capped.numpy_item(i)["targets"] for i in range(len(ds))) if len(t)]
    assert max(small) < 0.5 * S


def test_augmentation_is_deterministic(frames_dir):
    a = DetectorTrainSet([frames_dir], S, augment=True, seed=7)
    b = DetectorTrainSet([frames_dir], S, augment=True, seed=7)
    a.set_epoch(2)
    b.set_epoch(2)
    for i in (0, 5, 11):
        x, y = a[i], b[i]
        for key in x:
            assert torch.equal(x[key], y[key]), key
    b.set_epoch(3)
    assert not torch.equal(a[5]["image"], b[5]["image"])


def test_no_augment_is_letterbox(frames_dir):
    from hand_pose_ros.research.synth.shards import SynthDataset

    raw = SynthDataset(frames_dir).numpy_item(4)
    item = DetectorTrainSet([frames_dir], S, augment=False).numpy_item(4)
    out, scale, pad = letterbox(raw["image"], S)
    np.testing.assert_array_equal(item["image"], out)
    valid = raw["hand_valid"]
    kp = raw["kp2d"][valid] * scale + np.asarray(pad)
    np.testing.assert_allclose(item["targets"].keypoints, kp, atol=1e-4)


def test_collate_pads_targets(frames_dir):
    ds = DetectorTrainSet([frames_dir], S, augment=False)
    counts = [len(ds.numpy_item(i)["targets"]) for i in range(len(ds))]
    order = np.argsort(counts)
    picks = [int(order[0]), int(order[-1])]
    batch = collate_detection([ds[i] for i in picks])
    m = max(1, max(counts))
    assert batch["image"].shape == (2, 3, S, S)
    assert batch["boxes"].shape == (2, m, 4) and batch["keypoints"].shape == (2, m, 21, 2)
    assert batch["gt_mask"].shape == (2, m) and batch["gt_mask"].dtype == torch.bool
    assert batch["gt_mask"].sum(1).tolist() == [counts[i] for i in picks]
    assert not batch["kp_valid"][~batch["gt_mask"]].any()
    assert batch["index"].tolist() == picks
    # No hands in the whole batch: one padded, fully masked slot.
    empty = {"image": torch.zeros(3, S, S), "boxes": torch.zeros(0, 4),
             "classes": torch.zeros(0, dtype=torch.int64),
             "keypoints": torch.zeros(0, 21, 2), "kp_valid": torch.zeros(0, 21, dtype=torch.bool),
             "kp_visible": torch.zeros(0, 21, dtype=torch.bool),
             "index": torch.tensor(0)}  # fmt: skip
    batch = collate_detection([empty, empty])
    assert batch["gt_mask"].shape == (2, 1) and not batch["gt_mask"].any()


def test_synth_eval_set(frames_dir):
    data = open_detection_eval_set(frames_dir)
    assert len(data) == 12 and data.box_source == "mesh" and data.kind.startswith("synth_frames")
    hands = 0
    for item in data:
        assert item.image.shape == (120, 160, 3) and item.box_source == "mesh"
        n = len(item.classes)
        assert item.boxes.shape == (n, 4) and item.keypoints.shape == (n, 21, 2)
        assert item.kp_valid.shape == (n, 21) and set(item.classes.tolist()) <= {0, 1}
        hands += n
    assert hands >= 3


def test_handgraph_eval_set():
    root = realdata_path("handgraph_dev")
    data = open_detection_eval_set(root)
    assert len(data) == 100 and data.box_source == "keypoints"
    lefts = set()
    for item in data:
        assert item.image.shape == (256, 256, 3) and item.box_source == "keypoints"
        assert item.keypoints.shape == (1, 21, 2) and item.classes.shape == (1,)
        assert item.classes[0] in (0, 1) and item.kp_valid.all()
        kp = item.keypoints[0]
        assert ((kp >= 0) & (kp <= 256)).all()
        np.testing.assert_allclose(item.boxes[0], [*kp.min(0), *kp.max(0)])
        lefts.add(int(item.classes[0]))
    assert len(lefts) == 1  # one subject, one hand: the set's majority chirality
