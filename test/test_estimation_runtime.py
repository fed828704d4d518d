"""Runtimes: ONNX export (fixed / dynamic batch), ONNX Runtime == torch, MeshEstimator, CLI.

Parity runs every registered variant with seeded random weights (BN-calibrated so outputs
depend on the input, see ``_estimation_helpers``); every variant is built at 64 px input to
keep the test fast (same graph, smaller tensors). Joints must agree within 1e-4 m
(the contract). Vertices: median within 1e-4 m, max within 5e-3 m: the mesh stage of a
random-weight network amplifies float32 rounding (different summation order in ONNX
Runtime and oneDNN) by up to ~1e-3 m on single vertices (seen on the ResNet-50 baseline).
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import onnx
import pytest
import torch
from _estimation_helpers import calibrated_model, one_torch_thread  # noqa: F401

from hand_pose_ros.estimation import list_estimators
from hand_pose_ros.estimation.export import config_from_onnx_metadata, export_onnx
from hand_pose_ros.estimation.mesh_estimator import MeshEstimator
from hand_pose_ros.estimation.prepost import postprocess
from hand_pose_ros.runtime.backends import OnnxRunner, TorchRunner

K = np.array([[250.0, 0.0, 111.5], [0.0, 250.0, 95.5], [0.0, 0.0, 1.0]])


@pytest.mark.parametrize("name", list_estimators())
def test_onnx_runtime_matches_torch(name, tmp_path):
    model = calibrated_model(name)
    path = export_onnx(model, tmp_path / f"{name}.onnx", dynamic_batch=True)
    size = model.cfg.input_size
    batch = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(5)).numpy()
    ref = TorchRunner(model)(batch)
    got = OnnxRunner(path, threads=1, read_config=config_from_onnx_metadata)(batch)
    assert ref[0].std(axis=1).min() > 0.3  # outputs spread over bins: a real comparison
    for r, g in zip(ref, got, strict=True):
        assert r.shape == g.shape
    for b in range(2):
        obs_t = postprocess(*(r[b] for r in ref), (224, 192), K, model.cfg, root_depth=0.5)
        obs_o = postprocess(*(g[b] for g in got), (224, 192), K, model.cfg, root_depth=0.5)
        assert np.abs(obs_t.joints_cam - obs_o.joints_cam).max() < 1e-4  # metres
        vert_err = np.linalg.norm(obs_t.verts_cam - obs_o.verts_cam, axis=-1)
        assert np.median(vert_err) < 1e-4 and vert_err.max() < 5e-3
        assert np.abs(obs_t.joint_confidence - obs_o.joint_confidence).max() < 1e-3


def test_fixed_and_dynamic_batch_exports(tmp_path):
    model = calibrated_model("cpu_effb0_w05_128")
    fixed = onnx.load(str(export_onnx(model, tmp_path / "b1.onnx", dynamic_batch=False)))
    dynamic = onnx.load(str(export_onnx(model, tmp_path / "dyn.onnx", dynamic_batch=True)))
    assert fixed.opset_import[0].version >= 17
    assert fixed.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    assert dynamic.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    meta = {p.key: json.loads(p.value) for p in dynamic.metadata_props}
    assert meta["estimator_config"]["name"] == "cpu_effb0_w05_128"
    size = model.cfg.input_size
    batch = np.random.default_rng(0).standard_normal((3, 3, size, size)).astype(np.float32)
    out = OnnxRunner(tmp_path / "dyn.onnx", threads=1, read_config=config_from_onnx_metadata)(batch)
    assert out[1].shape == (3, 778, 3)
    with pytest.raises(ValueError, match="opset"):
        export_onnx(model, tmp_path / "old.onnx", opset=13)


def test_mesh_estimator_backends_agree_on_a_crop(tmp_path):
    crop = np.random.default_rng(1).integers(0, 256, (224, 192, 3), dtype=np.uint8)
    t = MeshEstimator("cpu_effb0_w05_128", backend="torch")
    o = MeshEstimator("cpu_effb0_w05_128", backend="onnx", cache_dir=tmp_path, threads=1)
    assert (tmp_path / "onnx").is_dir()  # exported once, named by the model hash
    obs_t, obs_o = t.estimate(crop, K, root_depth=0.6), o.estimate(crop, K, root_depth=0.6)
    assert obs_t.joints_cam.shape == (21, 3) and obs_t.uv.shape == (21, 2)
    assert np.abs(obs_t.joints_cam - obs_o.joints_cam).max() < 1e-4
    both = o.estimate_batch([crop, crop[:, ::-1].copy()], [K, K], [0.6, 0.6])
    assert len(both) == 2
    np.testing.assert_allclose(both[0].joints_cam, obs_o.joints_cam, atol=1e-6)
    with pytest.raises(ValueError, match="backend"):
        MeshEstimator("cpu_effb0_w05_128", backend="tflite")
    with pytest.raises(ValueError, match="crop"):
        t.estimate(crop.astype(np.float32), K)
    with pytest.raises(FileNotFoundError, match=r"nothing\.pt"):
        MeshEstimator("cpu_effb0_w05_128", weights=tmp_path / "nothing.pt")


def test_weights_round_trip_through_a_state_dict(tmp_path):
    model = calibrated_model("cpu_effb0_w05_128")
    torch.save(model.state_dict(), tmp_path / "w.pt")
    size = model.cfg.input_size
    est = MeshEstimator("cpu_effb0_w05_128", weights=tmp_path / "w.pt", input_size=size)
    batch = np.random.default_rng(2).standard_normal((1, 3, size, size)).astype(np.float32)
    np.testing.assert_allclose(est.run_network(batch)[0], TorchRunner(model)(batch)[0], atol=1e-5)


def test_export_cli_writes_both_files(tmp_path, capsys):
    from hand_pose_ros.cli.main import main

    rc = main(["export", "--model", "cpu_effb0_w05_128", "--format", "onnx", "--out",
               str(tmp_path)])  # fmt: skip
    assert rc == 0
    written = json.loads(capsys.readouterr().out)
    assert written["random_init"] is True
    for key in ("dynamic_batch", "fixed_batch"):
        assert onnx.load(written[key]).graph.output[1].name == "vertices"


_HAS_TRT = importlib.util.find_spec("tensorrt") is not None


@pytest.mark.skipif(
    not (_HAS_TRT and torch.cuda.is_available()),
    reason="tensorrt not installed (JetPack / NVIDIA wheels only; not on the CPU dev machines)"
    if not _HAS_TRT
    else "TensorRT needs a CUDA GPU",
)
def test_tensorrt_fp16_close_to_onnx(tmp_path):
    crop = np.random.default_rng(1).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    o = MeshEstimator("cpu_effb0_w05_128", backend="onnx", cache_dir=tmp_path)
    r = MeshEstimator("cpu_effb0_w05_128", backend="tensorrt", cache_dir=tmp_path)
    assert any((tmp_path / "tensorrt").glob("*.engine"))
    diff = np.abs(o.estimate(crop, K, 0.5).joints_cam - r.estimate(crop, K, 0.5).joints_cam)
    assert diff.max() < 5e-3  # FP16
