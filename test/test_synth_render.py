"""Synthetic renderer and generator: labels agree with the pixels, determinism, mirroring."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from hand_pose_ros.research.synth.augment import AugmentConfig
from hand_pose_ros.research.synth.views import View, project

TIPS = (4, 8, 12, 16, 20)


def _egl_or_skip():
    pytest.importorskip("moderngl")
    from hand_pose_ros.research.synth.gl_renderer import create_egl_context

    try:
        ctx = create_egl_context()
    except RuntimeError as exc:
        pytest.skip(f"no headless OpenGL: {exc}")
    ctx.release()


def _clean_config(kind: str = "crops", **kw):
    from hand_pose_ros.research.synth.generator import SynthConfig

    quiet = AugmentConfig(
        occluder_prob=0,
        blur_prob=0,
        motion_blur_prob=0,
        noise_prob=0,
        jpeg_prob=0,
        downscale_prob=0,
        color_jitter=0,
    )
    return SynthConfig(kind=kind, num_skin_textures=2, texture_size=256, augment=quiet, **kw)


@pytest.fixture(scope="module", params=["open", "standin"])
def generator(request):
    _egl_or_skip()
    from hand_pose_ros.research.synth.generator import SynthGenerator
    from hand_pose_ros.research.synth.hand_source import StandinHandSource, create_hand_source

    try:
        source = StandinHandSource() if request.param == "standin" else create_hand_source("open")
    except (ImportError, FileNotFoundError, AttributeError) as exc:
        pytest.skip(f"hand model unavailable: {exc}")
    return SynthGenerator(_clean_config(), seed=123, hand_source=source)


def _render_labels(gen, index):
    """Render sample ``index`` and also return the raw renderer output (ids, depth)."""
    captured = {}
    original = gen.renderer.render

    def spy(*args, **kwargs):
        out = original(*args, **kwargs)
        captured["out"] = out
        return out

    gen.renderer.render = spy
    try:
        sample = gen.sample(index)
    finally:
        gen.renderer.render = original
    return sample, captured["out"]


def test_labels_consistent_with_intrinsics(generator):
    for i in range(6):
        s = generator.sample(i)
        (hand,) = s["hands"]
        np.testing.assert_allclose(
            project(s["K"].astype(np.float64), hand["joints_cam"].astype(np.float64)),
            hand["kp2d"],
            atol=1e-2,
        )
        vuv = project(s["K"].astype(np.float64), hand["verts_cam"].astype(np.float64))
        np.testing.assert_allclose(hand["box_xyxy"], [*vuv.min(0), *vuv.max(0)], atol=1e-2)
        assert s["image"].shape == (256, 256, 3) and s["image"].dtype == np.uint8
        # The crop is centred on the hand: box centre near the image centre.
        centre = (hand["box_xyxy"][:2] + hand["box_xyxy"][2:]) / 2
        assert np.all(np.abs(centre - 127.5) < 60), centre


def test_keypoints_inside_silhouette_and_tips_near_edges(generator):
    tip_dist, tip_limit = [], []
    for i in range(12):
        s, out = _render_labels(generator, i)
        (hand,) = s["hands"]
        ids = out.ids
        fg = cv2.dilate(((ids == 1) | (ids == 3)).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        px = np.rint(hand["kp2d"]).astype(int)
        inside = (px[:, 0] >= 0) & (px[:, 0] < 256) & (px[:, 1] >= 0) & (px[:, 1] < 256)
        # Every keypoint in view projects onto the hand (or its forearm, for the wrist).
        assert fg[px[inside, 1], px[inside, 0]].all(), (
            i,
            np.flatnonzero(inside & ~fg[np.clip(px[:, 1], 0, 255), np.clip(px[:, 0], 0, 255)]),
        )
        # Fingertips lie on the surface: near a silhouette or depth edge of the render.
        d = np.where(np.isfinite(out.depth), out.depth, 100.0)
        jump = np.zeros_like(d, bool)
        for axis in (0, 1):
            step = np.abs(np.diff(d, axis=axis)) > 0.006
            if axis == 0:
                jump[1:] |= step
                jump[:-1] |= step
            else:
                jump[:, 1:] |= step
                jump[:, :-1] |= step
        dist = cv2.distanceTransform((~jump).astype(np.uint8), cv2.DIST_L2, 5)
        f = s["K"][0, 0]
        for k in TIPS:
            if inside[k] and hand["visibility"][k]:
                tip_dist.append(dist[px[k, 1], px[k, 0]])
                # A tip seen end-on sits a finger radius (~9 mm) inside the outline.
                tip_limit.append(f * 0.012 / hand["joints_cam"][k, 2] + 2.0)
    tip_dist, tip_limit = np.array(tip_dist), np.array(tip_limit)
    assert len(tip_dist) >= 20
    assert np.mean(tip_dist <= tip_limit) >= 0.9, (tip_dist, tip_limit)


def test_visibility_flags(generator):
    # Palm to the camera, no pose: (nearly) every keypoint is visible.
    view = View(0.0, 0.0, 0.0)
    hand = generator.place(0, view, np.array([0.0, 0.0, 0.6]), left=False)
    from hand_pose_ros.research.synth.scene import keypoint_visibility

    K = np.array([[400.0, 0, 127.5], [0, 400.0, 127.5], [0, 0, 1]])
    out = generator.renderer.render(generator._draw_items(np.random.default_rng(0), [hand]), K)
    uv = project(K, hand.joints)
    vis = keypoint_visibility(uv, hand.joints, out.depth, out.ids, 1, arm_id=3)
    assert vis.sum() >= 12
    # Hiding the image half with the hand's tips marks those tips occluded.
    occ = np.zeros((256, 256), bool)
    occ[: int(uv[9, 1])] = True
    vis_occ = keypoint_visibility(uv, hand.joints, out.depth, out.ids, 1, occ, arm_id=3)
    above = uv[:, 1] < int(uv[9, 1]) - 2
    assert not vis_occ[above].any()


def test_deterministic_by_seed_and_order(generator):
    from hand_pose_ros.research.synth.generator import SynthGenerator

    a = generator.sample(7)
    generator.sample(3)  # order does not matter: each sample has its own stream
    b = generator.sample(7)
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["hands"][0]["kp2d"], b["hands"][0]["kp2d"])
    other = SynthGenerator(_clean_config(), seed=124, hand_source=generator.hand)
    c = other.sample(7)
    assert not np.array_equal(a["hands"][0]["joints_cam"], c["hands"][0]["joints_cam"])
    again = SynthGenerator(_clean_config(), seed=123, hand_source=generator.hand)
    np.testing.assert_array_equal(again.sample(7)["image"], a["image"])


def test_left_hand_mirrors_right(generator):
    W = 256
    K = np.array([[500.0, 0, (W - 1) / 2], [0, 500.0, (W - 1) / 2], [0, 0, 1]])
    view = View(0.7, 0.3, 0.2)
    centre = np.array([0.0, 0.01, 0.55])
    renders, hands = [], []
    for left in (False, True):
        hand = generator.place(5, view, centre, left)
        items = generator._draw_items(np.random.default_rng(1), [hand])
        renders.append(generator.renderer.render(items, K))
        hands.append(hand)
    right_uv, left_uv = project(K, hands[0].joints), project(K, hands[1].joints)
    np.testing.assert_allclose(left_uv[:, 0], (W - 1) - right_uv[:, 0], atol=1e-6)
    np.testing.assert_allclose(left_uv[:, 1], right_uv[:, 1], atol=1e-6)
    m_right = renders[0].ids == 1
    m_left = renders[1].ids == 1
    iou = (m_left & m_right[:, ::-1]).sum() / (m_left | m_right[:, ::-1]).sum()
    assert iou > 0.98, iou
    # A left hand is not its own mirror image: the masks differ unflipped.
    assert (m_left & m_right).sum() / (m_left | m_right).sum() < iou


def test_frames_have_zero_to_two_hands():
    _egl_or_skip()
    from hand_pose_ros.research.synth.generator import SynthGenerator
    from hand_pose_ros.research.synth.hand_source import StandinHandSource

    gen = SynthGenerator(
        _clean_config("frames", frame_size=(320, 240)), seed=5, hand_source=StandinHandSource()
    )
    counts = []
    for i in range(8):
        s = gen.sample(i)
        assert s["image"].shape == (240, 320, 3)
        counts.append(len(s["hands"]))
        for h, hand in enumerate(s["hands"]):
            np.testing.assert_allclose(
                project(s["K"].astype(np.float64), hand["joints_cam"].astype(np.float64)),
                hand["kp2d"],
                atol=1e-2,
            )
            assert (s["mask"] == h + 1).any() or not hand["visibility"].any()
    assert set(counts) <= {0, 1, 2} and max(counts) >= 1
