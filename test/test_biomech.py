"""The 23 biomechanical DoF: axes from the rest pose, bio <-> pose, conventions, sampler."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hand_ik.bio_dofs import BIO_DOF_NAMES, BIO_DOF_TABLE, BIO_LOWER, BIO_UPPER
from hand_ik.bio_fit import pose_to_bio
from hand_ik.biomech import BioKinematics, bio_kinematics_for
from hand_ik.frames import to_hand_root
from hand_ik.hand_model import load_hand_model
from hand_ik.pose_sampler import KEYFRAMES, PoseSampler, PoseSamplerConfig

TIP = {"thumb": 4, "index": 8, "middle": 12, "ring": 16, "little": 20}


@pytest.fixture(scope="module")
def model64():
    return load_hand_model("open").double()


@pytest.fixture(scope="module")
def kin64(model64):
    return bio_kinematics_for(model64)


def test_table_has_every_dof_with_sourced_limits():
    assert [d.name for d in BIO_DOF_TABLE] == list(BIO_DOF_NAMES)
    for dof in BIO_DOF_TABLE:
        assert dof.lower < 0 < dof.upper, dof.name  # the template pose is inside the limits
        assert dof.source and dof.kind in ("abd", "flex", "rot")


def test_zero_bio_is_the_template(model64, kin64):
    pose = kin64.bio_to_pose(torch.zeros(1, 23, dtype=torch.float64))
    assert torch.allclose(pose, torch.zeros_like(pose))
    back = kin64.pose_to_bio_closed_form(pose)
    assert torch.allclose(back, torch.zeros(1, 23, dtype=torch.float64))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_bio_pose_round_trip_inside_limits(dtype):
    model = load_hand_model("open").to(dtype)
    kin = bio_kinematics_for(model)
    bio = torch.as_tensor(PoseSampler(3).sample_bio(64), dtype=dtype)
    fit = pose_to_bio(kin.bio_to_pose(bio), model=model, kinematics=kin)
    tol = 1e-3 if dtype == torch.float32 else 1e-6
    assert (fit.bio - bio).abs().max() < tol
    assert fit.keypoint_error.max() < 1e-4


def test_sign_conventions(model64, kin64):
    """Positive flexion moves a fingertip out of the palm (+z), abduction toward the thumb (+x)."""
    rest = to_hand_root(model64().joints)[0]
    for name in BIO_DOF_NAMES:
        finger = name.split("_")[0]
        bio = torch.zeros(1, 23, dtype=torch.float64)
        bio[0, BIO_DOF_NAMES.index(name)] = 0.4
        moved = to_hand_root(model64(pose=kin64.bio_to_pose(bio)).joints)[0]
        delta = moved[TIP[finger]] - rest[TIP[finger]]
        if finger != "thumb" and name.endswith("_flex"):
            assert delta[2] > 0.005, name
        if finger != "thumb" and name.endswith("_abd"):
            assert delta[0] > 0.01, name
        if name.startswith("thumb") and name.endswith("_flex"):
            assert delta[0] < 0 and delta[2] > 0, name  # across the palm, palmar
        # Only the driven finger moves.
        others = [TIP[f] for f in TIP if f != finger]
        assert (moved[others] - rest[others]).abs().max() < 1e-9, name


def test_pose_to_bio_fits_twisted_poses(model64, kin64):
    """45-DoF poses with small twists leave the 23-DoF space; the fit stays close."""
    pose, _ = PoseSampler(5).sample_pose45(64, kin64)
    fit = pose_to_bio(torch.as_tensor(pose), model=model64, kinematics=kin64)
    closed = kin64.pose_to_bio_closed_form(torch.as_tensor(pose))
    with torch.no_grad():
        target = model64(pose=torch.as_tensor(pose))
        start = model64(pose=kin64.bio_to_pose(closed))
    start_kp = (start.joints - target.joints).norm(dim=-1).mean(-1)
    start_v = (start.vertices - target.vertices).norm(dim=-1).mean(-1)
    assert fit.keypoint_error.mean() < 1.5e-3  # metres
    # The refinement improves on the joint-by-joint closed form, on keypoints and mesh.
    assert fit.keypoint_error.mean() < start_kp.mean()
    assert fit.vertex_error.mean() < start_v.mean()


def test_axes_follow_the_model_geometry(model64):
    """A rotated rest pose gets correspondingly rotated axes (geometry, not constants)."""
    import roma

    rest = model64().joints[0]
    rot = roma.rotvec_to_rotmat(torch.tensor([0.3, -0.5, 1.1], dtype=torch.float64))
    kin_a = BioKinematics.from_rest_keypoints(rest)
    kin_b = BioKinematics.from_rest_keypoints(rest @ rot.T)
    assert torch.allclose(kin_b.frames, kin_a.frames @ rot.T, atol=1e-12)
    assert torch.equal(kin_a.signs, kin_b.signs)


def test_sampler_respects_limits_and_is_deterministic():
    bio = PoseSampler(11).sample_bio(4000)
    assert bio.shape == (4000, 23)
    assert (bio >= np.array(BIO_LOWER) - 1e-12).all() and (bio <= np.array(BIO_UPPER) + 1e-12).all()
    assert np.array_equal(bio[:50], PoseSampler(11).sample_bio(4000)[:50])
    assert not np.array_equal(bio[:50], PoseSampler(12).sample_bio(4000)[:50])
    # Natural couplings: DIP follows PIP across the whole sample.
    for finger in ("index", "middle", "ring", "little"):
        pip = bio[:, BIO_DOF_NAMES.index(f"{finger}_pip_flex")]
        dip = bio[:, BIO_DOF_NAMES.index(f"{finger}_dip_flex")]
        assert np.corrcoef(pip, dip)[0, 1] > 0.5
    # Neighbouring fingers correlate more than distant ones (flexion of the MCPs).
    mcp = np.stack([bio[:, BIO_DOF_NAMES.index(f"{f}_mcp_flex")] for f in
                    ("index", "middle", "ring", "little")], axis=1)  # fmt: skip
    c = np.corrcoef(mcp.T)
    assert c[0, 1] > c[0, 3]


def test_finger_swapping_mixes_samples():
    no_swap = PoseSampler(2, PoseSamplerConfig(swap_probability=0.0)).sample_bio(500)
    swapped = PoseSampler(2, PoseSamplerConfig(swap_probability=1.0)).sample_bio(500)
    assert not np.allclose(no_swap, swapped)
    with pytest.raises(ValueError, match="swap_probability"):
        PoseSamplerConfig(swap_probability=2.0)


def test_keyframes_are_inside_the_limits():
    for name, bio in KEYFRAMES.items():
        assert (bio >= np.array(BIO_LOWER)).all() and (bio <= np.array(BIO_UPPER)).all(), name


def test_pose45_sampler_leaves_the_23_dof_space(kin64):
    pose, bio = PoseSampler(8).sample_pose45(32, kin64)
    exact = kin64.bio_to_pose(torch.as_tensor(bio)).numpy()
    assert pose.shape == (32, 45)
    diff = np.abs(pose - exact).max(axis=1)
    assert (diff > 1e-3).all() and (diff < 0.3).all()
