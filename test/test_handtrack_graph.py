"""The hand tracking graph on the real converted networks (ONNX Runtime): tracking a
scripted sequence of synthetic frames, re-detection, handedness on mirrored images, the
real hand video, and bad input. Skips where the network source wheel is not installed."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import realdata_path

from hand_ik.metrics import pa_mpjpe
from hand_pose_ros.handtrack import HandTrackConfig, HandTrackGraph


@pytest.fixture(scope="module")
def nets():
    from hand_pose_ros.handnets import network_runner
    from hand_pose_ros.handnets.registry import WheelNotInstalledError

    try:
        return network_runner("palm_full"), network_runner("landmark_full")
    except WheelNotInstalledError as exc:
        pytest.skip(f"hand networks not available: {exc}")


@pytest.fixture(scope="module")
def demo():
    from hand_pose_ros.pipeline.demo import DemoHand

    return DemoHand()


def graph(nets, **options) -> HandTrackGraph:
    palm, landmark = nets
    return HandTrackGraph(palm, landmark, HandTrackConfig(**options), palm.input_size,
                          landmark.input_size)  # fmt: skip


def test_tracks_one_hand_then_redetects_it_after_it_leaves(nets, demo):
    g = graph(nets, max_hands=2, search_every=10)
    frames = [demo.frame_at(i) for i in range(0, 60, 6)]
    blank = np.zeros_like(frames[0].image)
    ids, palm_runs = [], []
    for f in [*frames[:5], None, None, *frames[5:]]:
        out = g(blank if f is None else f.image, demo.K if f is None else f.K)
        palm_runs.append(g.times.palm_runs)
        if f is None:
            assert out == []
            continue
        assert len(out) == 1
        ids.append(out[0].track_id)
        assert out[0].handedness == "right" and 0.5 <= out[0].score <= 1.0
        hand_px = np.ptp(f.uv, axis=0).max()
        # Within 12 % of the hand's size: our model's joints and the network's keypoint
        # convention differ (issue 23).
        assert np.linalg.norm(out[0].image_points - f.uv, axis=1).mean() < 0.12 * hand_px
    assert len(set(ids[:5])) == 1 and len(set(ids[5:])) == 1  # stable while tracked
    assert ids[5] != ids[0]  # a hand that left and came back is a new track
    # The palm detector ran to start each track and while the frame was empty; while one
    # hand is tracked it looks for a second only every `search_every` frames.
    assert palm_runs[0] == 1 and palm_runs[5] == palm_runs[6] == 1
    assert sum(palm_runs[1:5]) <= 1


def test_metric_3d_matches_the_rendered_hand(nets, demo):
    g = graph(nets, max_hands=1)
    pred, true = [], []
    for i in range(0, 396, 20):
        f = demo.frame_at(i)
        out = g(f.image, f.K)
        assert len(out) == 1
        pred.append(out[0].camera_points)
        true.append(f.joints_cam)
    pred, true = np.array(pred), np.array(true)
    assert pa_mpjpe(pred, true).mean() < 0.02  # metres
    depth_error = np.abs(pred[:, 0, 2] - true[:, 0, 2]) / true[:, 0, 2]
    assert np.median(depth_error) < 0.2


def test_image_rays_keep_the_depths_and_project_onto_the_keypoints(nets, demo):
    f = demo.frame_at(40)
    (placed,) = graph(nets, max_hands=1)(f.image, f.K)
    (rays,) = graph(nets, max_hands=1, camera_points="image_rays")(f.image, f.K)
    np.testing.assert_array_equal(rays.image_points, placed.image_points)
    np.testing.assert_allclose(rays.camera_points[:, 2], placed.camera_points[:, 2])
    proj = rays.camera_points @ f.K.T
    np.testing.assert_allclose(proj[:, :2] / proj[:, 2:], rays.image_points, atol=1e-6)
    # The translated landmarks project onto the keypoints only on average (their own
    # shape): a few pixels off on the rendered hand, not exactly.
    proj = placed.camera_points @ f.K.T
    assert np.abs(proj[:, :2] / proj[:, 2:] - placed.image_points).max() > 0.5
    # The estimator node's parameter reaches the graph.
    from hand_pose_ros.pipeline.estimators import EstimatorStageConfig, create_estimator

    assert create_estimator("handtrack", camera_points="image_rays").cfg.camera_points == \
        "image_rays"  # fmt: skip
    with pytest.raises(ValueError, match="camera_points"):
        EstimatorStageConfig(camera_points="world")


class _CountingNet:
    """The landmark network, counting its calls; presence forced to 0 on chosen calls."""

    def __init__(self, net, blind_calls=()):
        self.net, self.blind_calls, self.calls = net, set(blind_calls), 0
        self.input_size = net.input_size

    def __call__(self, x):
        out = [np.array(o) for o in self.net(x)]
        if self.calls in self.blind_calls:
            out[1][...] = 0.0
        self.calls += 1
        return tuple(out)


def test_roi_refinements_run_on_a_new_hand_only_and_keep_a_seen_roi(nets, demo):
    palm, landmark = nets
    frames = [demo.frame_at(i) for i in (40, 41)]
    counting = _CountingNet(landmark)
    g = HandTrackGraph(palm, counting, HandTrackConfig(max_hands=1, roi_refinements=2),
                       palm.input_size, landmark.input_size)  # fmt: skip
    first = g(frames[0].image, frames[0].K)
    assert len(first) == 1 and counting.calls == 3  # palm ROI, then two refinements
    g(frames[1].image, frames[1].K)
    assert counting.calls == 4  # a tracked hand: one pass
    # The refinements land where the next frame's tracking would: on the hand, close to
    # a plain graph's answer one frame later (same image twice).
    plain = graph(nets, max_hands=1)
    plain(frames[0].image, frames[0].K)
    (tracked,) = plain(frames[0].image, frames[0].K)
    size = np.ptp(tracked.image_points, axis=0).max()
    assert np.abs(first[0].image_points - tracked.image_points).max() < 0.05 * size
    # A refined ROI the network no longer sees the hand in is dropped: the last seen
    # one stays, and the hand is still reported (here: from the palm ROI's pass).
    blind = _CountingNet(landmark, blind_calls={1, 2})
    g = HandTrackGraph(palm, blind, HandTrackConfig(max_hands=1, roi_refinements=2),
                       palm.input_size, landmark.input_size)  # fmt: skip
    (hand,) = g(frames[0].image, frames[0].K)
    (palm_roi,) = graph(nets, max_hands=1)(frames[0].image, frames[0].K)
    np.testing.assert_allclose(hand.image_points, palm_roi.image_points, atol=1e-6)
    assert blind.calls == 2  # the one refinement not seen ends the refining
    with pytest.raises(ValueError, match="roi_refinements"):
        HandTrackConfig(roi_refinements=-1)


def test_mirror_average_is_close_to_one_pass_and_keeps_the_side(nets, demo):
    f = demo.frame_at(40)
    (one,) = graph(nets, max_hands=1)(f.image, f.K)
    (both,) = graph(nets, max_hands=1, mirror_average=True)(f.image, f.K)
    assert both.handedness == one.handedness == "right" and both.score == one.score
    size = np.ptp(one.image_points, axis=0).max()
    difference = np.abs(both.image_points - one.image_points).max()
    assert 0.0 < difference < 0.05 * size  # a second opinion, not another hand


def test_average_mirrored_undoes_the_mirror():
    from hand_pose_ros.handtrack.graph import _average_mirrored

    rng = np.random.default_rng(3)
    landmarks, world = rng.uniform(0, 224, (2, 21, 3)), rng.normal(0, 0.05, (2, 21, 3))
    lm_m, w_m = landmarks.copy(), world.copy()
    lm_m[..., 0] = 223 - lm_m[..., 0]  # what the network says of the mirrored crops
    w_m[..., 0] = -w_m[..., 0]
    lm, w = _average_mirrored(np.concatenate([landmarks, lm_m]),
                              np.concatenate([world, w_m]), 2, 224)  # fmt: skip
    np.testing.assert_allclose(lm, landmarks)
    np.testing.assert_allclose(w, world)


def test_handedness_follows_the_mirror(nets, demo):
    f = demo.frame_at(30)
    flipped = np.ascontiguousarray(f.image[:, ::-1])
    assert graph(nets)(f.image, f.K)[0].handedness == "right"
    assert graph(nets)(flipped, f.K)[0].handedness == "left"
    assert graph(nets, mirrored_input=True)(flipped, f.K)[0].handedness == "right"
    # The operator's side: the one hand seen is reported as that side.
    out = graph(nets, hand_side="left")(f.image, f.K)
    assert [h.handedness for h in out] == ["left"]


def test_real_video_world_landmarks_match_the_recorded_joints(nets):
    from hand_pose_ros.pipeline.video_source import VideoSource

    video_dir = realdata_path("hand_video")
    # Joints recorded from the same networks in Google's graph, wrist-local frame, metres.
    recorded = np.load(video_dir / "human_joint_right_621x21x3.npy")
    video = VideoSource(f"video:{video_dir / 'human_hand_video.mp4'}")
    # The world landmarks as the network gives them (only translated into the camera).
    g = graph(nets, max_hands=2, search_every=10, camera_points="translated")
    ours, ids = [], set()
    try:
        for _ in range(40):
            out = g(video.read(), video.K)
            assert len(out) == 1 and out[0].handedness == "right"
            ids.add(out[0].track_id)
            ours.append(out[0].camera_points)
    finally:
        video.close()
    assert ids == {0}
    # Same networks, so after a similarity alignment (frames differ) ours agree within a
    # few millimetres; crop resampling differs.
    errors = pa_mpjpe(np.array(ours), recorded[:40].astype(np.float64))
    assert np.median(errors) < 0.005


def test_rejects_bad_images_and_intrinsics(nets, demo):
    g = graph(nets)
    K = demo.K
    for bad in (np.zeros((48, 64, 3), np.float32), np.zeros((48, 64), np.uint8),
                np.zeros((8, 8, 3), np.uint8), [[0]]):  # fmt: skip
        with pytest.raises(ValueError, match="uint8 RGB"):
            g(bad, K)
    with pytest.raises(ValueError, match="intrinsics"):
        g(np.zeros((48, 64, 3), np.uint8), np.eye(3) * np.nan)
    assert g(np.zeros((48, 64, 3), np.uint8), K) == []  # a tiny empty frame: no hand


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="max_hands"):
        HandTrackConfig(max_hands=0)
    with pytest.raises(ValueError, match="palm_model"):
        HandTrackConfig(palm_model="palm_huge")
    with pytest.raises(ValueError, match="hand_side"):
        HandTrackConfig(hand_side="both")
    with pytest.raises(ValueError, match="camera_points"):
        HandTrackConfig(camera_points="world")


def test_two_hands_of_both_sides(nets, two_hand_frames_dir):
    """Synthetic frames (test seed range) with a left and a right hand apart: with
    ``max_hands=2`` both are found as separate tracks with their own sides. Measured
    2026-12-07 on the 12 such 320 x 240 frames (hands 0.5-0.9 m away, ~40 px): both hands
    in 5 frames, 11 of 24 hands, side right for 10 of the 11. Small rendered hands are
    hard for the real-trained palm detector (real crops: 100 % found)."""
    from hand_pose_ros.detection.postprocess import box_iou
    from hand_pose_ros.research.detection.data import open_detection_eval_set

    frames = []
    for it in open_detection_eval_set(two_hand_frames_dir):
        h, w = it.image.shape[:2]
        inside = all(b[0] >= 0 and b[1] >= 0 and b[2] <= w and b[3] <= h for b in it.boxes)
        if (len(it.boxes) == 2 and it.classes[0] != it.classes[1] and inside
                and box_iou(it.boxes[:1], it.boxes[1:])[0, 0] == 0.0):  # fmt: skip
            frames.append(it)
    assert len(frames) >= 6, len(frames)
    K = np.array([[300.0, 0, 160], [0, 300.0, 120], [0, 0, 1]])
    both = sides_right = hands = 0
    for it in frames:
        out = graph(nets, max_hands=2)(it.image, K)
        assert len({h.track_id for h in out}) == len(out) <= 2
        centres = np.array([(b[:2] + b[2:]) / 2 for b in it.boxes])
        for h in out:  # the labelled hand nearest to the found one
            j = int(np.argmin(np.linalg.norm(centres - h.image_points.mean(0), axis=1)))
            hands += 1
            sides_right += (h.handedness == "right") == (int(it.classes[j]) == 0)
        both += len(out) == 2
    assert both >= len(frames) // 3, (both, len(frames))
    assert hands >= 0.4 * 2 * len(frames), hands
    assert sides_right >= 0.8 * hands, (sides_right, hands)


def test_bench_estimator_row_on_real_crops(nets, capsys):
    """`bench estimator --data handgraph_dev`: the handtrack row on 12 real crops (each a new
    image). Measured on all 100 crops: PCK@0.10 0.9986, PA-MPJPE 8.98 mm."""
    from hand_pose_ros.cli.main import main

    data = realdata_path("handgraph_dev")
    assert main(["bench", "estimator", "--json", "--data", str(data), "--no-mediapipe",
                 "--limit", "12"]) == 0  # fmt: skip
    import json

    (row,) = json.loads(capsys.readouterr().out)["rows"]
    assert row["name"] == "handtrack" and row["count"] == 12 and row["valid_rate"] == 1.0
    assert row["pck_0.10"] >= 0.95 and row["pa_mpjpe_mm"] < 15.0
