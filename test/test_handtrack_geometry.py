"""Palm anchors, decoding, weighted NMS and the rotated ROI warps of the hand tracking
graph, on hand-made inputs (no networks)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hand_pose_ros.detection.postprocess import box_iou
from hand_pose_ros.estimation.detections import on_image_rays, place_in_camera, world_to_camera
from hand_pose_ros.handtrack.palm_anchors import AnchorSpec, ssd_anchor_centres
from hand_pose_ros.handtrack.palm_decode import Palm, decode_palms, weighted_nms
from hand_pose_ros.handtrack.rois import (
    RotatedRect,
    crop_matrix,
    crop_rect,
    crop_to_frame,
    letterbox,
    normalize_radians,
    rect_from_landmarks,
    rect_from_palm,
)


def test_palm_anchor_layout():
    a = ssd_anchor_centres()
    assert a.shape == (2016, 2)
    # Stride 8: 24 x 24 cells, 2 anchors each, row-major; then stride 16: 12 x 12, 6 each.
    np.testing.assert_allclose(a[0], [0.5 / 24, 0.5 / 24])
    np.testing.assert_allclose(a[1], a[0])
    np.testing.assert_allclose(a[2], [1.5 / 24, 0.5 / 24])
    np.testing.assert_allclose(a[48], [0.5 / 24, 1.5 / 24])
    np.testing.assert_allclose(a[1152:1158], [[0.5 / 12, 0.5 / 12]] * 6)
    np.testing.assert_allclose(a[-1], [11.5 / 12, 11.5 / 12])
    assert ssd_anchor_centres(AnchorSpec(input_size=128, strides=(8, 16))).shape == (
        16 * 16 * 2 + 8 * 8 * 2, 2)  # fmt: skip
    with pytest.raises(ValueError, match="strides"):
        AnchorSpec(strides=())


def test_decode_palms_places_box_and_keypoints_around_the_anchor():
    anchors = ssd_anchor_centres()
    reg = np.zeros((2016, 18))
    logits = np.full(2016, -10.0)
    i = 1152 + 6 * (12 * 5 + 7)  # stride-16 cell (x 7, y 5)
    logits[i] = 3.0
    reg[i, :4] = [2.0, -4.0, 40.0, 30.0]
    reg[i, 4:] = np.arange(14, dtype=float)
    palms = decode_palms(reg, logits, anchors, 192, min_score=0.5)
    assert len(palms) == 1
    centre = np.array([7.5, 5.5]) * 16 + [2.0, -4.0]
    np.testing.assert_allclose(palms[0].box, [centre[0] - 20, centre[1] - 15,
                                              centre[0] + 20, centre[1] + 15])  # fmt: skip
    np.testing.assert_allclose(palms[0].keypoints,
                               np.array([7.5, 5.5]) * 16 + np.arange(14).reshape(7, 2))
    assert palms[0].score == pytest.approx(1 / (1 + math.exp(-3)))
    assert decode_palms(reg, logits, anchors, 192, min_score=0.96) == []
    with pytest.raises(ValueError, match="palm outputs"):
        decode_palms(reg[:10], logits, anchors, 192)


def test_decode_skips_non_finite_regressors_and_clips_huge_logits():
    anchors = ssd_anchor_centres()
    reg = np.zeros((2016, 18))
    logits = np.full(2016, -1e9)
    logits[[3, 4]] = 1e9
    reg[3, 0] = np.nan
    palms = decode_palms(reg, logits, anchors, 192)
    assert len(palms) == 1 and palms[0].score == pytest.approx(1.0)


def _palm(x, y, s, score):
    return Palm(np.array([x, y, x + s, y + s], float), np.tile([x, y], (7, 1)).astype(float),
                score)  # fmt: skip


def test_weighted_nms_averages_a_cluster_and_keeps_separate_palms():
    a, b, far = _palm(0, 0, 10, 0.9), _palm(1, 1, 10, 0.6), _palm(50, 50, 10, 0.7)
    out = weighted_nms([b, far, a], iou_threshold=0.3)
    assert [round(p.score, 2) for p in out] == [0.9, 0.7]
    w = np.array([0.9, 0.6]) / 1.5
    np.testing.assert_allclose(out[0].box, w[0] * a.box + w[1] * b.box)
    np.testing.assert_allclose(out[0].keypoints, w[0] * a.keypoints + w[1] * b.keypoints)
    np.testing.assert_allclose(out[1].box, far.box)
    assert box_iou(a.box, far.box)[0, 0] == 0.0
    assert weighted_nms([]) == []
    # A degenerate (empty) box is still reported once, never lost or duplicated.
    empty = _palm(5, 5, 0, 0.8)
    assert len(weighted_nms([empty, a])) == 2


@pytest.mark.parametrize("angle", [0.0, 0.4, -1.2, 2.9, math.pi])
def test_crop_round_trip_and_pixels(angle):
    rect = RotatedRect(300.0, 200.0, 180.0, 180.0, normalize_radians(angle))
    m = crop_matrix(rect, 224)
    # The rect's centre is the crop's centre; its corners the crop's corners.
    np.testing.assert_allclose(m[:, :2] @ [300.0, 200.0] + m[:, 2], [112, 112], atol=1e-9)
    np.testing.assert_allclose(rect.corners() @ m[:, :2].T + m[:, 2],
                               [[0, 0], [224, 0], [224, 224], [0, 224]], atol=1e-9)
    pts = np.random.default_rng(0).uniform(0, 224, (21, 2))
    frame_pts = crop_to_frame(pts, m)
    np.testing.assert_allclose(frame_pts @ m[:, :2].T + m[:, 2], pts, atol=1e-9)
    # A bright dot in the frame appears where the matrix says.
    img = np.zeros((480, 640, 3), np.uint8)
    dot = np.array([330.0, 170.0])
    img[170, 330] = 255
    crop, _ = crop_rect(img, rect, 224)
    where = m[:, :2] @ dot + m[:, 2]
    ys, xs = np.nonzero(crop[..., 0])
    assert len(xs) > 0
    centroid = np.average(np.stack([xs, ys], 1), axis=0, weights=crop[ys, xs, 0])
    assert np.linalg.norm(centroid - where) < 1.0


def _upright_hand(scale=100.0):
    """21 landmarks of an upright right hand (wrist at the bottom, fingers up), pixels."""
    xs = [0, -40, -55, -65, -72, -30, -32, -33, -34, -10, -10, -10, -10, 10, 11, 12, 13, 28, 31,
          33, 35]  # fmt: skip
    ys = [0, -20, -40, -55, -70, -80, -110, -130, -145, -85, -118, -140, -158, -80, -110, -130,
          -145, -70, -95, -110, -122]  # fmt: skip
    return np.stack([xs, ys], 1) * (scale / 100.0)


@pytest.mark.parametrize("angle", [0.0, 0.5, -2.0, 3.0])
def test_rect_from_landmarks_follows_the_hand_rotation(angle):
    c, s = math.cos(angle), math.sin(angle)
    uv = _upright_hand() @ np.array([[c, -s], [s, c]]).T + [320, 240]
    rect = rect_from_landmarks(uv)
    assert normalize_radians(rect.rotation - angle) == pytest.approx(0.0, abs=0.15)
    m = crop_matrix(rect, 224)
    crop_pts = uv @ m[:, :2].T + m[:, 2]
    assert (crop_pts > 0).all() and (crop_pts < 224).all()  # the whole hand is inside
    assert crop_pts[0, 1] > crop_pts[12, 1]  # wrist below the middle fingertip: upright
    assert rect.width == pytest.approx(rect.height)


def test_rect_from_palm_points_fingers_up():
    palm = Palm(np.array([100.0, 100.0, 160.0, 160.0]), np.zeros((7, 2)), 0.9)
    palm.keypoints[0] = [130, 160]  # wrist below ...
    palm.keypoints[2] = [130, 100]  # ... the middle finger's base
    rect = rect_from_palm(palm)
    assert rect.rotation == pytest.approx(0.0)
    assert rect.width == pytest.approx(60 * 2.6)
    assert rect.cy == pytest.approx(130 - 30)  # half a box toward the fingers
    palm.keypoints[2] = [190, 160]  # fingers point right: turn the crop a quarter
    assert rect_from_palm(palm).rotation == pytest.approx(math.pi / 2)


def test_letterbox_keeps_aspect_and_maps_points():
    img = np.zeros((720, 1280, 3), np.uint8)
    img[360, 640] = 255
    out, scale, pad = letterbox(img, 192)
    assert out.shape == (192, 192, 3)
    assert scale == pytest.approx(0.15)
    np.testing.assert_allclose(pad, [0, 42])
    assert not out[:42].any() and not out[150:].any()


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), depth=st.floats(0.2, 3.0), f=st.floats(200.0, 2000.0))
def test_world_landmarks_onto_the_image_rays(seed, depth, f):
    """The translated world landmarks keep their depths and move onto the keypoints' rays:
    they then project exactly onto the 2D keypoints."""
    rng = np.random.default_rng(seed)
    K = np.array([[f, 0.0, 320.0], [0.0, 1.1 * f, 240.0], [0.0, 0.0, 1.0]])
    world = rng.normal(0.0, 0.04, (21, 3))  # a hand-sized cloud, camera axes, metres
    truth = world + np.array([0.0, 0.0, depth]) + rng.normal(0.0, 0.01, (21, 3))
    uv = truth[:, :2] / truth[:, 2:] * [K[0, 0], K[1, 1]] + K[:2, 2]
    placed = place_in_camera(world, uv, K)
    cam = on_image_rays(placed, uv, K)
    np.testing.assert_array_equal(cam[:, 2], placed[:, 2])
    front = cam[:, 2] > 0
    proj = cam[front, :2] / cam[front, 2:] * [K[0, 0], K[1, 1]] + K[:2, 2]
    np.testing.assert_allclose(proj, uv[front], atol=1e-6)
    np.testing.assert_array_equal(cam[~front], placed[~front])  # behind: left as they were
    # The graph's one entry point gives the same points per option.
    np.testing.assert_array_equal(world_to_camera(world, uv, K, "image_rays"), cam)
    np.testing.assert_array_equal(world_to_camera(world, uv, K, "translated"), placed)


def test_world_to_camera_names_a_bad_option():
    with pytest.raises(ValueError, match="camera_points"):
        world_to_camera(np.zeros((21, 3)), np.zeros((21, 2)), np.eye(3), "world")


def test_image_rays_leave_points_behind_the_camera_alone():
    K = np.array([[500.0, 0.0, 100.0], [0.0, 500.0, 80.0], [0.0, 0.0, 1.0]])
    points = np.array([[0.1, 0.2, -0.5], [0.0, 0.0, 0.0], [0.01, 0.02, 0.4]])
    uv = np.array([[10.0, 20.0], [30.0, 40.0], [150.0, 60.0]])
    out = on_image_rays(points, uv, K)
    np.testing.assert_array_equal(out[:2], points[:2])
    np.testing.assert_allclose(out[2], [0.05 * 0.4 / 0.5, -0.02 * 0.4 / 0.5, 0.4])
