"""Robot renderer, keypoint overlay, side-by-side video and GIF writers."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from conftest import REPO_ROOT, realdata_path
from PIL import Image

from hand_ik.keypoints import FINGER_KEYPOINTS, NUM_KEYPOINTS
from hand_pose_ros.viz.colours import BACKGROUND_RGB, FINGER_COLOURS_RGB
from hand_pose_ros.viz.overlay import draw_hand_keypoints, put_label
from hand_pose_ros.viz.robot_render import VIEWS, RobotRenderer
from hand_pose_ros.viz.video import SideBySideWriter, tile_side_by_side, write_gif

OUR_URDF = REPO_ROOT / "urdf" / "hand_pose_ros_hand_right.urdf"
OUR_LEFT_URDF = REPO_ROOT / "urdf" / "hand_pose_ros_hand_left.urdf"
ROBOT_CONFIGS = REPO_ROOT / "config" / "robots"
SIZE = (320, 240)  # (width, height): not square, so a transposed image would fail


@pytest.fixture(scope="module")
def renderer() -> RobotRenderer:
    return RobotRenderer(OUR_URDF, size=SIZE)


def fist(r: RobotRenderer, amount: float = 0.9) -> dict[str, float]:
    """Every free joint at ``amount`` of its upper limit (flexion for our hand)."""
    return {n: amount * hi for n, hi in zip(r.robot.free_names, r.robot.free_upper, strict=True)}


def foreground(img: np.ndarray) -> np.ndarray:
    return np.any(img != np.array(BACKGROUND_RGB, np.uint8), axis=2)


def assert_inside(r: RobotRenderer, joints: dict[str, float], img: np.ndarray) -> None:
    uv, _ = r.project(r.link_positions(joints)[r.tree.hand_links()])
    w, h = r.size
    assert np.all((uv >= 0) & (uv < [w, h])), "a link origin projects outside the image"
    fg = foreground(img)
    assert fg.sum() > 500
    # Nothing is drawn on the image border: the whole hand, capsules included, is in view.
    assert not (fg[0].any() or fg[-1].any() or fg[:, 0].any() or fg[:, -1].any())


def test_render_shape_dtype(renderer: RobotRenderer) -> None:
    img = renderer.render({})
    assert img.shape == (SIZE[1], SIZE[0], 3)
    assert img.dtype == np.uint8


def test_zero_pose_is_inside_the_frame(renderer: RobotRenderer) -> None:
    zero = dict.fromkeys(renderer.joint_names, 0.0)
    img = renderer.render(zero)
    assert_inside(renderer, zero, img)
    np.testing.assert_array_equal(img, renderer.render({}))  # unnamed joints stay neutral


def test_random_poses_stay_inside_the_frame(renderer: RobotRenderer) -> None:
    rng = np.random.default_rng(123)  # not the fitting seed
    lo, hi = renderer.robot.free_lower, renderer.robot.free_upper
    for _ in range(20):
        q = dict(zip(renderer.robot.free_names, rng.uniform(lo, hi), strict=True))
        assert_inside(renderer, q, renderer.render(q))


def test_different_poses_give_different_images(renderer: RobotRenderer) -> None:
    open_hand, closed = renderer.render({}), renderer.render(fist(renderer))
    changed = np.any(open_hand != closed, axis=2).mean()
    assert changed > 0.02, f"only {changed:.3%} of the pixels changed"
    one_finger = renderer.render({"FFJ3": 1.2})
    assert np.any(one_finger != open_hand)
    np.testing.assert_array_equal(closed, renderer.render(fist(renderer)))  # deterministic


def test_fingertips_are_highlighted_in_finger_colours(renderer: RobotRenderer) -> None:
    names = {renderer.tree.names[i]: c for i, c in renderer._tips.items()}
    assert names == {"thtip": 0, "fftip": 1, "mftip": 2, "rftip": 3, "lftip": 4}
    img = renderer.render({})
    uv, depth = renderer.project(renderer.link_positions({}))
    for link, finger in names.items():
        u, v = np.round(uv[renderer.tree.names.index(link)]).astype(int)
        shade = 1.0 - 0.5 * np.clip(depth[renderer.tree.names.index(link)], 0, 1)
        expected = np.array(FINGER_COLOURS_RGB[finger]) * shade
        np.testing.assert_allclose(img[v, u], expected, atol=3)


def test_front_view_axes_match_a_right_hand(renderer: RobotRenderer) -> None:
    """Palm toward the viewer, fingers up, thumb to the viewer's right; flexing brings
    the fingertips toward the viewer (and the depth cue brightens them)."""
    r = RobotRenderer(OUR_URDF, size=SIZE, view="front")
    names = r.tree.names
    uv, depth = r.project(r.link_positions({}))
    palm, mid, thumb = names.index("palm"), names.index("mftip"), names.index("thtip")
    assert uv[mid, 1] < uv[palm, 1] - 0.25 * SIZE[1]  # fingers point up
    assert uv[thumb, 0] > uv[mid, 0] + 10  # thumb on the right
    _, depth_fist = r.project(r.link_positions(fist(r)))
    for tip in ("fftip", "mftip", "rftip", "lftip"):
        assert depth_fist[names.index(tip)] < depth[names.index(tip)] - 0.2

    left = RobotRenderer(OUR_LEFT_URDF, size=SIZE, view="front")
    uv_l, _ = left.project(left.link_positions({}))
    assert uv_l[left.tree.names.index("thtip"), 0] < uv_l[left.tree.names.index("mftip"), 0] - 10


def test_estimated_axes_agree_with_the_robot_config() -> None:
    cfg = yaml.safe_load((ROBOT_CONFIGS / "hand_pose_ros_hand.yaml").read_text())
    estimated = RobotRenderer(OUR_URDF, size=SIZE, view="front")
    configured = RobotRenderer(
        OUR_URDF, size=SIZE, view="front", fingertips=cfg["fingertips"],
        palm_link=cfg["palm_link"], hand_root_to_palm=np.array(cfg["hand_root_to_palm"]),
    )  # fmt: skip
    rel = estimated.rotation @ configured.rotation.T
    angle = np.degrees(np.arccos(np.clip((np.trace(rel) - 1) / 2, -1, 1)))
    assert angle < 10.0


@pytest.mark.parametrize("view", sorted(VIEWS))
def test_views(view: str, renderer: RobotRenderer) -> None:
    r = RobotRenderer(OUR_URDF, size=SIZE, view=view)
    half = fist(r, 0.5)
    img = r.render(half)
    assert_inside(r, half, img)
    same = np.array_equal(img, renderer.render(half))  # the fixture uses "three_quarter"
    assert same == (view == "three_quarter")


def test_bad_input_is_rejected(renderer: RobotRenderer) -> None:
    with pytest.raises(ValueError, match="unknown joint 'nope'"):
        renderer.render({"nope": 0.0})
    with pytest.raises(ValueError, match="not finite"):
        renderer.render({"FFJ3": float("nan")})
    with pytest.raises(ValueError, match="unknown view"):
        RobotRenderer(OUR_URDF, view="top")
    with pytest.raises(FileNotFoundError):
        RobotRenderer(OUR_URDF.with_name("missing.urdf"))
    with pytest.raises(ValueError, match="no link named"):
        RobotRenderer(OUR_URDF, fingertips={"thumb_tip": "nope"})


def test_render_is_fast(renderer: RobotRenderer) -> None:
    r = RobotRenderer(OUR_URDF, size=(480, 480))
    q = fist(r, 0.5)
    r.render(q)
    times = []
    for _ in range(20):
        t0 = time.perf_counter()
        r.render(q)
        times.append(time.perf_counter() - t0)
    # A few ms on one core; the bound is loose because CI machines are shared.
    assert np.median(times) < 0.030


# (robot folder/URDF under realdata/robots, robot config name, number of fingertips)
REAL_ROBOTS = [
    ("allegro_hand/allegro_hand_right.urdf", "allegro", 4),
    ("leap_hand/leap_hand_right.urdf", "leap", 4),
    ("shadow_hand/shadow_hand_right.urdf", "shadow", 5),
    ("inspire_hand/inspire_hand_right.urdf", "inspire", 5),
    ("ability_hand/ability_hand_right.urdf", "ability", 5),
]


@pytest.mark.parametrize(("urdf", "config", "num_tips"), REAL_ROBOTS)
def test_real_robot_hands(urdf: str, config: str, num_tips: int) -> None:
    path = realdata_path("robots", urdf)
    r = RobotRenderer(path, size=SIZE)
    assert len(r._tips) == num_tips  # leaves fixed to the palm (sensors, mounts) excluded
    lo, hi = r.robot.free_lower, r.robot.free_upper
    for q in ({}, dict(zip(r.robot.free_names, 0.5 * (lo + hi), strict=True))):
        img = r.render(q)
        assert img.shape == (SIZE[1], SIZE[0], 3)
        assert_inside(r, q, img)
    assert np.any(r.render({}) != r.render(dict(zip(r.robot.free_names, hi, strict=True))))
    # The axes guessed from the tree are close to the ones the robot config states.
    cfg = yaml.safe_load((ROBOT_CONFIGS / f"{config}.yaml").read_text())
    configured = RobotRenderer(
        path, size=SIZE, fingertips=cfg["fingertips"], palm_link=cfg["palm_link"],
        hand_root_to_palm=np.array(cfg["hand_root_to_palm"]),
    )  # fmt: skip
    rel = r.rotation @ configured.rotation.T
    assert np.degrees(np.arccos(np.clip((np.trace(rel) - 1) / 2, -1, 1))) < 25.0


# ---------------------------------------------------------------- overlay


def hand_uv(width: int = 320, height: int = 240) -> np.ndarray:
    """A plausible open right hand in pixels: wrist at the bottom, fingers up."""
    uv = np.zeros((NUM_KEYPOINTS, 2))
    uv[0] = (width / 2, height - 20)
    for f, (name, ids) in enumerate(FINGER_KEYPOINTS.items()):
        base_u = width / 2 + (40 - 20 * f) * (1.6 if name == "thumb" else 1.0)
        for j, k in enumerate(ids):
            uv[k] = (base_u + (10 * j if name == "thumb" else 0), height - 60 - 35 * j)
    return uv


def test_draw_hand_keypoints_colours_each_finger() -> None:
    img = np.zeros((240, 320, 3), np.uint8)
    uv = hand_uv()
    out = draw_hand_keypoints(img, uv, thickness=3)
    assert out is img
    for f, ids in enumerate(FINGER_KEYPOINTS.values()):
        mid = np.round(0.5 * (uv[ids[1]] + uv[ids[2]])).astype(int)  # middle of a bone
        np.testing.assert_array_equal(img[mid[1], mid[0]], FINGER_COLOURS_RGB[f])


def test_draw_hand_keypoints_skips_low_confidence_and_nan() -> None:
    img = np.zeros((240, 320, 3), np.uint8)
    draw_hand_keypoints(img, hand_uv(), confidence=np.zeros(NUM_KEYPOINTS))
    assert not img.any()
    uv = hand_uv()
    uv[FINGER_KEYPOINTS["index"][3]] = np.nan
    conf = np.ones(NUM_KEYPOINTS)
    conf[FINGER_KEYPOINTS["little"][0]] = 0.05
    draw_hand_keypoints(img, uv, confidence=conf, handedness="left")
    assert img.any()
    little_mcp = np.round(hand_uv()[FINGER_KEYPOINTS["little"][0]]).astype(int)
    assert not img[little_mcp[1], little_mcp[0]].any()


def test_draw_hand_keypoints_rejects_bad_input() -> None:
    img = np.zeros((240, 320, 3), np.uint8)
    with pytest.raises(ValueError, match="uv must have shape"):
        draw_hand_keypoints(img, np.zeros((20, 2)))
    with pytest.raises(ValueError, match="confidence"):
        draw_hand_keypoints(img, hand_uv(), confidence=np.ones(5))
    with pytest.raises(ValueError, match="handedness"):
        draw_hand_keypoints(img, hand_uv(), handedness="both")
    with pytest.raises(ValueError, match="uint8"):
        draw_hand_keypoints(img.astype(np.float32), hand_uv())
    with pytest.raises(ValueError, match="RGB"):
        draw_hand_keypoints(np.zeros((240, 320), np.uint8), hand_uv())


def test_put_label_draws_top_left() -> None:
    img = np.full((240, 320, 3), 128, np.uint8)
    assert put_label(img, "robot\nallegro") is img
    assert (img[:40, :100] != 128).any()
    assert (img[120:, :] == 128).all()


# ---------------------------------------------------------------- video / GIF


def test_tile_side_by_side_resizes_to_a_common_height() -> None:
    left = np.zeros((100, 150, 3), np.uint8)
    right = np.full((50, 40, 3), 255, np.uint8)
    out = tile_side_by_side(left, right)
    assert out.shape == (100, 150 + 80, 3)
    assert (out[:, :150] == 0).all() and (out[:, 150:] == 255).all()


def test_side_by_side_writer_makes_a_readable_mp4(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "viz.mp4"
    n = 12
    # Odd sizes on purpose: the writer pads to even so FFmpeg keeps every pixel.
    left = np.zeros((121, 160, 3), np.uint8)
    left[..., 0] = 220  # red camera side
    right = np.zeros((61, 61, 3), np.uint8)
    right[..., 2] = 220  # blue robot side, upscaled x2
    with SideBySideWriter(path, fps=10) as writer:
        for _ in range(n):
            writer.write(left, right)
    assert writer.frame_size == (282, 122)
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened()
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == n
    assert (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (
        282, 122,
    )  # fmt: skip
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    cap.release()
    assert len(frames) == n
    mid = frames[n // 2]
    np.testing.assert_allclose(mid[20:100, 20:140].mean((0, 1)), [220, 0, 0], atol=12)
    np.testing.assert_allclose(mid[20:100, 180:270].mean((0, 1)), [0, 0, 220], atol=12)


def test_side_by_side_writer_rejects_bad_use(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fps"):
        SideBySideWriter(tmp_path / "a.mp4", fps=0)
    writer = SideBySideWriter(tmp_path / "a.mp4", fps=5)
    with pytest.raises(ValueError, match="uint8"):
        writer.write(np.zeros((10, 10, 3)), np.zeros((10, 10, 3), np.uint8))
    writer.close()
    with pytest.raises(RuntimeError, match="closed"):
        writer.write(np.zeros((10, 10, 3), np.uint8), np.zeros((10, 10, 3), np.uint8))


def test_write_gif_is_small_and_opens(tmp_path: Path, renderer: RobotRenderer) -> None:
    """~5 s of demo-like frames (robot render beside a textured 'camera' image)."""
    fps, n = 15, 75
    rng = np.random.default_rng(0)
    camera = cv2.GaussianBlur(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), (0, 0), 6)
    frames = []
    for i in range(n):
        amount = 0.5 + 0.5 * np.sin(i / 8)
        left = camera.copy()
        draw_hand_keypoints(left, hand_uv() + np.array([0.0, -10.0 * amount]))
        frames.append(tile_side_by_side(left, renderer.render(fist(renderer, amount))))
    path = tmp_path / "docs" / "demo.gif"
    size = write_gif(path, frames, fps=fps, max_width=480)
    assert size == path.stat().st_size
    assert size < 2_000_000
    with Image.open(path) as gif:
        assert gif.format == "GIF"
        assert gif.n_frames == n
        assert gif.size == (480, 180)
        assert gif.info["duration"] == 70  # 1/15 s rounded to GIF's 10 ms steps
        gif.seek(n // 2)
        assert np.asarray(gif.convert("RGB")).std() > 10


def test_write_gif_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one frame"):
        write_gif(tmp_path / "a.gif", [], fps=10)
    frames = [np.zeros((10, 10, 3), np.uint8), np.zeros((12, 10, 3), np.uint8)]
    with pytest.raises(ValueError, match="same shape"):
        write_gif(tmp_path / "a.gif", frames, fps=10)
