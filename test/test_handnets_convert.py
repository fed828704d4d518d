"""The TFLite -> torch / ONNX converter of the real-image hand networks (hand_pose_ros.handnets):
parity with the TFLite reference interpreter on real and rendered crops, dynamic batch, the
cache and its checks, the errors, trainability and the export CLI."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import logging
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch
from conftest import realdata_path

from hand_pose_ros.handnets import (
    CONVERTER_VERSION,
    Sha256MismatchError,
    WheelNotInstalledError,
    cached_onnx,
    list_networks,
    locate_tflite,
    network_runner,
    registry,
    write_notice,
)
from hand_pose_ros.handnets._ops import UnsupportedOpError, same_padding
from hand_pose_ros.handnets.converter import build_torch_network, convert_graph
from hand_pose_ros.handnets.export import METADATA_KEY
from hand_pose_ros.handnets.tflite_reader import TfliteFormatError, read_tflite

DATA = Path(__file__).parent / "data"
NETWORKS = list_networks()
# Allowed max abs difference to the TFLite interpreter, per output (units of the output).
TOLERANCE = {
    "landmarks": 1e-3,  # pixels of the 224 input
    "world_landmarks": 1e-5,  # metres
    "presence": 1e-5,
    "handedness": 1e-5,
    "palm_regressors": 1e-2,  # pixels of the 192 input
    "palm_logits": 1e-3,
}
# The TFLite output tensor of each of our outputs (checked by the converter via markers).
TFLITE_OUTPUT = {
    "landmarks": "Identity",
    "presence": "Identity_1",
    "handedness": "Identity_2",
    "world_landmarks": "Identity_3",
    "palm_regressors": "Identity",
    "palm_logits": "Identity_1",
}

needs_wheel = pytest.mark.skipif(
    importlib.util.find_spec("mediapipe") is None,
    reason="the mediapipe==0.10.21 wheel that ships the hand networks is not installed "
    "(scripts/setup.sh installs it)",
)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("handnets_cache")


@pytest.fixture(scope="module")
def torch_nets() -> dict:
    return {name: build_torch_network(name) for name in NETWORKS}


@pytest.fixture(scope="module")
def onnx_runners(cache_dir) -> dict:
    return {name: network_runner(name, "onnx", cache_dir=cache_dir) for name in NETWORKS}


@pytest.fixture(scope="module")
def interpreter_class():
    litert = pytest.importorskip(
        "ai_edge_litert.interpreter",
        reason="no TFLite reference interpreter: pip install -r requirements/dev.txt "
        "(ai-edge-litert)",
    )
    return litert.Interpreter


def _real_crops() -> list[np.ndarray]:
    folder = realdata_path("handgraph_dev", "images")
    files = sorted(folder.iterdir())[:2]
    return [cv2.imread(str(f))[:, :, ::-1] for f in files]


def _rendered_crops() -> list[np.ndarray]:
    data = np.load(DATA / "meshnet_synth_fixture.npz")
    offsets = data["jpeg_offsets"]
    return [cv2.imdecode(data["jpeg"][offsets[i] : offsets[i + 1]], cv2.IMREAD_COLOR)[:, :, ::-1]
            for i in range(2)]  # fmt: skip


def _batch(crops: list[np.ndarray], size: int) -> np.ndarray:
    """(B, 3, S, S) float32 RGB in [0, 1] from RGB uint8 crops (area resize)."""
    resized = [cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA) for c in crops]
    return np.stack(resized).astype(np.float32).transpose(0, 3, 1, 2) / 255.0


def _tflite_outputs(interpreter_class, name: str, batch: np.ndarray) -> dict[str, np.ndarray]:
    """Reference outputs of the wheel's .tflite, one image at a time, by TFLite name."""
    interp = interpreter_class(model_path=str(locate_tflite(name).path))
    interp.allocate_tensors()
    rows = []
    for image in batch:
        interp.set_tensor(interp.get_input_details()[0]["index"], image.transpose(1, 2, 0)[None])
        interp.invoke()
        rows.append({d["name"]: interp.get_tensor(d["index"]) for d in interp.get_output_details()})
    return {key: np.concatenate([r[key] for r in rows]) for key in rows[0]}


@needs_wheel
@pytest.mark.parametrize("images", ["real", "rendered"])
@pytest.mark.parametrize("name", NETWORKS)
def test_parity_with_tflite(name, images, torch_nets, onnx_runners, interpreter_class):
    crops = _real_crops() if images == "real" else _rendered_crops()
    runner = onnx_runners[name]
    batch = _batch(crops, runner.input_size)
    reference = _tflite_outputs(interpreter_class, name, batch)
    with torch.no_grad():
        torch_out = [t.numpy() for t in torch_nets[name](torch.from_numpy(batch))]
    onnx_out = runner(batch)
    for i, out_name in enumerate(runner.output_names):
        ref = reference[TFLITE_OUTPUT[out_name]].reshape(onnx_out[i].shape)
        for backend, out in (("torch", torch_out[i]), ("onnx", onnx_out[i])):
            err = float(np.abs(out - ref).max())
            assert err <= TOLERANCE[out_name], f"{name} {backend} {out_name}: {err}"


@needs_wheel
@pytest.mark.parametrize("name", NETWORKS)
def test_output_contract_and_dynamic_batch(name, onnx_runners):
    runner = onnx_runners[name]
    s = runner.input_size
    batch = np.random.default_rng(3).random((3, 3, s, s), dtype=np.float32)
    together = runner(batch)
    singles = [runner(batch[i : i + 1]) for i in range(3)]
    expected = {n: o.shape for o in registry.get_spec(name).outputs for n in [o.name]}
    assert runner.output_names == tuple(expected)
    for i, out_name in enumerate(runner.output_names):
        spec_shape = next(o.shape for o in registry.get_spec(name).outputs if o.name == out_name)
        assert together[i].shape == (3, *spec_shape)
        np.testing.assert_allclose(together[i], np.concatenate([o[i] for o in singles]),
                                   atol=1e-5, rtol=0)  # fmt: skip


@needs_wheel
def test_landmark_outputs_are_plausible_on_a_real_crop(onnx_runners):
    landmarks, presence, handedness, world = onnx_runners["landmark_full"](
        _batch(_real_crops(), 224)
    )
    assert np.all(presence > 0.5)  # real hands
    assert np.all((handedness >= 0) & (handedness <= 1))
    assert np.all((landmarks[..., :2] > 0) & (landmarks[..., :2] < 224))
    span = np.linalg.norm(world[:, 12] - world[:, 0], axis=-1)  # wrist to middle tip
    assert np.all((span > 0.08) & (span < 0.25)), span  # metres, an adult hand


@needs_wheel
def test_onnx_metadata_and_cache_rejects_other_source(cache_dir, onnx_runners, caplog):
    path = cached_onnx("palm_lite", cache_dir=cache_dir)
    source = locate_tflite("palm_lite")
    assert path.name == f"palm_lite_{source.sha256[:16]}.onnx"
    assert (path.parent / "NOTICE").is_file() and (path.parent / "LICENSE").is_file()
    proto = onnx.load(str(path))
    assert not proto.graph.initializer or all(not t.external_data for t in proto.graph.initializer)
    meta = json.loads({p.key: p.value for p in proto.metadata_props}[METADATA_KEY])
    assert meta["source_sha256"] == source.sha256
    assert meta["converter_version"] == CONVERTER_VERSION
    # A cached file that records another source is rebuilt, with a warning.
    for p in proto.metadata_props:
        if p.key == METADATA_KEY:
            p.value = json.dumps({**meta, "source_sha256": "0" * 64})
    onnx.save(proto, str(path))
    with caplog.at_level(logging.WARNING, logger="hand_pose_ros.handnets.export"):
        assert cached_onnx("palm_lite", cache_dir=cache_dir) == path
    assert "rebuilding" in caplog.text and "0000000000000000" in caplog.text
    rebuilt = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(rebuilt[METADATA_KEY])["source_sha256"] == source.sha256
    # A corrupt cached file is rebuilt too.
    path.write_bytes(b"not an onnx file")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hand_pose_ros.handnets.export"):
        cached_onnx("palm_lite", cache_dir=cache_dir)
    assert "unreadable" in caplog.text
    assert network_runner("palm_lite", cache_dir=cache_dir).cfg.source_sha256 == source.sha256


@needs_wheel
def test_sha256_mismatch(tmp_path):
    changed = tmp_path / "palm_lite_other.tflite"
    # Bytes appended after the flatbuffer: another sha256, still a readable model.
    changed.write_bytes(locate_tflite("palm_lite").path.read_bytes() + b"\0" * 16)
    with pytest.raises(Sha256MismatchError, match=r"mediapipe==0\.10\.21.*allow_sha_mismatch"):
        locate_tflite("palm_lite", changed)
    net = build_torch_network("palm_lite", changed, allow_sha_mismatch=True)
    assert net.cfg.source_sha256 == registry.file_sha256(changed)


def test_wheel_not_installed(monkeypatch):
    monkeypatch.setattr(registry.importlib.util, "find_spec", lambda name: None)
    fix = r"scripts/setup\.sh.*pip install --no-deps mediapipe==0\.10\.21"
    with pytest.raises(WheelNotInstalledError, match=fix):
        locate_tflite("landmark_full")


def test_unknown_name_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="palm_full"):
        registry.get_spec("palm_huge")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        locate_tflite("palm_full", tmp_path / "absent.tflite")


@needs_wheel
def test_corrupt_files(tmp_path):
    with pytest.raises(TfliteFormatError, match="not a TFLite model"):
        read_tflite(np.random.default_rng(0).bytes(4096))
    truncated = tmp_path / "truncated.tflite"
    data = locate_tflite("palm_lite").path.read_bytes()
    truncated.write_bytes(data[: len(data) // 3])
    with pytest.raises(Sha256MismatchError):
        build_torch_network("palm_lite", truncated)
    with pytest.raises(TfliteFormatError, match="corrupt or truncated"):
        build_torch_network("palm_lite", truncated, allow_sha_mismatch=True)


@needs_wheel
def test_unsupported_op_is_named():
    graph = read_tflite(locate_tflite("palm_lite").path)
    graph.ops[5] = dataclasses.replace(graph.ops[5], type="SOFTMAX")
    with pytest.raises(UnsupportedOpError, match="SOFTMAX"):
        convert_graph(graph, "palm_lite", "0" * 64)


@pytest.mark.parametrize(("size", "kernel", "stride", "expected"), [
    (224, 3, 2, (0, 1)), (192, 5, 2, (1, 2)), (112, 3, 1, (1, 1)), (7, 1, 1, (0, 0)),
    (15, 3, 2, (1, 1)),
])  # fmt: skip
def test_same_padding_is_tf(size, kernel, stride, expected):
    before, after = same_padding(size, kernel, stride)
    assert (before, after) == expected
    out = (size + before + after - kernel) // stride + 1
    assert out == -(-size // stride)  # TF "SAME": ceil(size / stride) outputs


@needs_wheel
@pytest.mark.parametrize("name", ["landmark_lite", "palm_lite"])
def test_backward_reaches_every_parameter(name):
    net = build_torch_network(name).train()
    params = list(net.parameters())
    assert params and all(p.dtype == torch.float32 and p.requires_grad for p in params)
    s = net.cfg.input_size
    x = torch.rand(2, 3, s, s, generator=torch.Generator().manual_seed(0))
    sum(out.square().mean() for out in net(x)).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in params)
    assert sum(int((p.grad != 0).any()) for p in params) == len(params)


@needs_wheel
def test_feature_maps(torch_nets):
    net = torch_nets["landmark_full"]
    maps = dict(net.feature_maps())
    sizes = {shape[1:] for shape in maps.values()}
    assert {(28, 28), (14, 14), (7, 7)} <= sizes
    name_14 = [n for n, shape in net.feature_maps() if shape[1:] == (14, 14)][-1]
    feats = net.features(torch.zeros(2, 3, 224, 224), [name_14])
    assert feats[name_14].shape == (2, *maps[name_14])
    with pytest.raises(KeyError, match="feature_maps"):
        net.features(torch.zeros(1, 3, 224, 224), ["nope"])


@needs_wheel
def test_torch_runner_and_input_checks(onnx_runners):
    runner = network_runner("landmark_lite", "torch", threads=None)
    assert runner.output_names == onnx_runners["landmark_lite"].output_names
    batch = np.random.default_rng(1).random((1, 3, 224, 224), dtype=np.float32)
    for a, b in zip(runner(batch), onnx_runners["landmark_lite"](batch), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="float32"):
        runner(batch.astype(np.float64))
    with pytest.raises(ValueError, match=r"\(B, 3, 224, 224\)"):
        runner(batch[:, :, :192, :192])
    with pytest.raises(ValueError, match="backend"):
        network_runner("landmark_lite", "tflite")


@needs_wheel
def test_export_cli_writes_licence_and_is_deterministic(tmp_path, cache_dir, onnx_runners):
    from hand_pose_ros.cli.export import run

    args = argparse.Namespace(model="palm_lite", format="onnx", weights=None, out=str(tmp_path),
                              opset=17, num_vertices=None, allow_sha_mismatch=False)  # fmt: skip
    assert run(args) == 0
    stem = f"palm_lite_{locate_tflite('palm_lite').sha256[:16]}"
    dynamic, fixed = tmp_path / f"{stem}.onnx", tmp_path / f"{stem}_b1.onnx"
    batch_dim = onnx.load(str(fixed)).graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_value == 1
    # Same bytes as the runner's cached conversion: the export is deterministic.
    assert dynamic.read_bytes() == cached_onnx("palm_lite", cache_dir=cache_dir).read_bytes()
    assert "Apache License" in (tmp_path / "LICENSE").read_text()
    notice = (tmp_path / "NOTICE").read_text()
    assert "float16 to float32" in notice and "mediapipe" in notice
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


@needs_wheel
def test_write_notice(tmp_path):
    licence, notice = write_notice(tmp_path / "out")
    assert licence.read_text().startswith(" " * 10) and "Version 2.0" in licence.read_text()
    assert "Changes made by hand_pose_ros" in notice.read_text()
