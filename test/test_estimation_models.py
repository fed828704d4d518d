"""Estimator registry, forward/decode shapes for every variant, and seed 002 Table 1-2 MACs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _estimation_helpers import calibrated_model, one_torch_thread, small_input_size  # noqa: F401

from hand_pose_ros.estimation import (
    EstimatorConfig,
    create_mesh_net,
    estimator_config,
    list_estimators,
    register_estimator,
)
from hand_pose_ros.estimation.lixel import lixel_to_depth
from hand_pose_ros.estimation.prepost import postprocess

ALL = list_estimators()


def test_registry_lists_paper_and_cpu_variants():
    for name in ("i2l_baseline", "lite_effb0", "lite_effb0_dw", "lite_effb0_mbconv",
                 "lite_effb0_dwse"):  # fmt: skip
        assert name in ALL
    assert sum(n.startswith("cpu_") for n in ALL) >= 2


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError, match="lite_effb0_dwse"):
        create_mesh_net("no_such_model")


def test_duplicate_registration_rejected():
    def lite_effb0():  # same name as a registered builder
        return {}

    with pytest.raises(ValueError, match="already registered"):
        register_estimator(lite_effb0)


def test_bad_overrides_and_config_fields():
    with pytest.raises(ValueError, match="unknown config fields"):
        estimator_config("lite_effb0", not_a_field=1)
    with pytest.raises(ValueError, match="input_size"):
        EstimatorConfig(input_size=100)
    with pytest.raises(ValueError, match="decoder_block"):
        EstimatorConfig(decoder_block="conv")


@pytest.mark.parametrize("name", ALL)
def test_forward_and_decode_shapes(name):
    model = calibrated_model(name)
    cfg = model.cfg
    size = small_input_size(name)
    with torch.no_grad():
        out = model(torch.randn(2, 3, size, size))
    assert out.joints.shape == (2, 21, 3)
    assert out.vertices.shape == (2, 778, 3)
    assert out.joint_confidence.shape == (2, 21)
    for t in out:
        assert torch.isfinite(t).all()
    assert out.joints.min() >= 0 and out.joints.max() <= cfg.bins - 1
    assert ((out.joint_confidence >= 0) & (out.joint_confidence <= 1)).all()
    k = np.array([[200.0, 0, 99.5], [0, 200.0, 99.5], [0, 0, 1]])
    j, v, c = (t[0].numpy() for t in out)
    obs = postprocess(j, v, c, (200, 200), k, cfg, root_depth=0.4)
    assert obs.joints_cam.shape == (21, 3) and obs.verts_cam.shape == (778, 3)
    assert obs.uv.shape == (21, 2) and obs.joint_confidence.shape == (21,)
    assert np.isfinite(obs.joints_cam).all() and np.isfinite(obs.verts_cam).all()
    assert obs.root_depth_source == "given"
    rel = lixel_to_depth(out.joints[0, :, 2], cfg.bins, cfg.depth_range_m).numpy()
    np.testing.assert_allclose(obs.joints_cam[:, 2], 0.4 + rel, atol=1e-6)
    assert np.all(np.abs(obs.joints_cam[:, 2] - 0.4) <= cfg.depth_range_m)


def test_vertex_and_joint_counts_follow_the_hand_model():
    model = create_mesh_net("cpu_effb0_w05_128", num_vertices=50).eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 128, 128))
    assert out.vertices.shape == (1, 50, 3)


def test_wrong_input_size_raises():
    model = calibrated_model("cpu_effb0_w05_128")
    with pytest.raises(ValueError, match="image"):
        model(torch.zeros(1, 3, 96, 96))


def test_baseline_table1_and_lite_table2_macs():
    """seed 002 Tables 1-2 at 256 px (paper's ptflops rule for transposed convs), within 10%."""
    from hand_pose_ros.benchmarks.flops import PAPER_TABLE1, PAPER_TABLE2, count_macs

    with torch.device("meta"):  # shapes are all ptflops needs
        baseline = create_mesh_net("i2l_baseline")
    total, per_module = count_macs(baseline, 256)
    assert total / 1e9 == pytest.approx(PAPER_TABLE2["i2l_baseline"][0], rel=0.01)
    for module, gmacs in PAPER_TABLE1.items():
        assert per_module[module] / 1e9 == pytest.approx(gmacs, rel=0.02), module
    params = sum(p.numel() for p in baseline.parameters()) / 1e6
    assert params == pytest.approx(PAPER_TABLE2["i2l_baseline"][1], rel=0.01)
    del baseline
    for name in ("lite_effb0", "lite_effb0_dw", "lite_effb0_mbconv", "lite_effb0_dwse"):
        with torch.device("meta"):
            model = create_mesh_net(name)
        gmacs, params = PAPER_TABLE2[name]
        assert count_macs(model, 256)[0] / 1e9 == pytest.approx(gmacs, rel=0.10), name
        assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(params, rel=0.10)
