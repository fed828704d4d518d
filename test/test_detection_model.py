"""Detector network: shapes, anchors, decoding, focused linear attention, ONNX export."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from _estimation_helpers import one_torch_thread  # noqa: F401

from hand_pose_ros.detection.config import (
    INPUT_NAME,
    OUTPUT_NAMES,
    DetectorConfig,
    create_detector_config,
    list_detectors,
)
from hand_pose_ros.detection.model import (
    FocusedLinearAttention,
    FocusedLinearAttentionBlock,
    HandDetectorNet,
    anchor_points,
    create_detector,
    focused_map,
    linear_attention,
)

CPU = "far_handnet_cpu_256"



def _model(name: str = CPU, seed: int = 0, **overrides) -> HandDetectorNet:
    torch.manual_seed(seed)
    return create_detector(name, **overrides).eval()


def _check_eval_shapes(model: HandDetectorNet, size: int, batch: int = 2) -> None:
    cfg = model.cfg
    a = sum((size // s) ** 2 for s in cfg.strides)
    with torch.no_grad():
        boxes, scores, kpts = model(torch.rand(batch, 3, size, size))
    assert boxes.shape == (batch, a, 4)
    assert scores.shape == (batch, a, cfg.num_classes)
    assert kpts.shape == (batch, a, cfg.num_keypoints, 3)
    assert bool(((scores >= 0) & (scores <= 1)).all())
    assert bool(((kpts[..., 2] >= 0) & (kpts[..., 2] <= 1)).all())
    assert bool((boxes[..., 2:] >= boxes[..., :2]).all())


@pytest.mark.parametrize(("name", "size"), [(CPU, 256), (CPU, 128), ("yolo_pose_cpu_256", 128)])
def test_eval_output_shapes(name, size):
    _check_eval_shapes(_model(name), size)


def test_big_variant_constructs_and_runs_small():
    model = _model("far_handnet_s_320")
    assert model.cfg.input_size == 320
    assert model.anchor_xy.shape == (model.cfg.num_anchors, 2)
    _check_eval_shapes(model, 64, batch=1)


def test_every_registered_variant_builds():
    for name in list_detectors():
        model = create_detector(name)
        assert model.cfg.name == name
        assert (model.flow is not None) == model.cfg.rle


def test_training_outputs_raw_maps_with_gradients():
    model = _model(CPU).train()
    cfg, size, b = model.cfg, 128, 2
    a = sum((size // s) ** 2 for s in cfg.strides)
    raw = model(torch.rand(b, 3, size, size))
    k = cfg.num_keypoints
    expected = {
        "box": (b, a, 4),
        "cls": (b, a, cfg.num_classes),
        "kpt": (b, a, k, 2),
        "kpt_logit": (b, a, k),
        "kpt_sigma": (b, a, k, 2),
    }
    assert {key: tuple(v.shape) for key, v in raw.items()} == expected
    assert bool((raw["box"] >= 0).all())
    sum(v.float().mean() for v in raw.values()).backward()
    stem_grad = model.backbone.stem.conv.weight.grad
    assert stem_grad is not None and float(stem_grad.abs().sum()) > 0


def test_anchor_order_and_count():
    cfg = create_detector_config(CPU)
    points, strides = anchor_points(cfg)
    assert points.dtype == strides.dtype == torch.float32
    assert points.shape == (cfg.num_anchors, 2) and strides.shape == (cfg.num_anchors,)
    assert cfg.num_anchors == 32 * 32 + 16 * 16 + 8 * 8
    torch.testing.assert_close(points[:3], torch.tensor([[4.0, 4.0], [12.0, 4.0], [20.0, 4.0]]))
    torch.testing.assert_close(points[32], torch.tensor([4.0, 12.0]))  # row 1, x fastest
    torch.testing.assert_close(points[1023], torch.tensor([252.0, 252.0]))
    torch.testing.assert_close(points[1024], torch.tensor([8.0, 8.0]))  # stride-16 level
    torch.testing.assert_close(points[1024 + 256], torch.tensor([16.0, 16.0]))  # stride 32
    torch.testing.assert_close(points[-1], torch.tensor([240.0, 240.0]))
    assert strides[:1024].eq(8).all() and strides[1024:1280].eq(16).all()
    assert strides[1280:].eq(32).all()


def test_decode_hand_made_raw():
    model = _model(CPU, input_size=64)  # anchors: 64 + 16 + 4 = 84
    points, strides = anchor_points(model.cfg)
    a, k = points.shape[0], model.cfg.num_keypoints
    box = torch.ones(1, a, 4) * strides[None, :, None]
    sigma = torch.full((1, a, k, 2), 0.25)
    sigma[..., 1] = 0.75
    raw = {
        "box": box,  # l = t = r = b = 1 stride
        "cls": torch.zeros(1, a, 2),
        "kpt": points[None, :, None, :].expand(1, a, k, 2),
        "kpt_logit": torch.zeros(1, a, k),
        "kpt_sigma": sigma,
    }
    boxes, scores, kpts = model.decode(raw)
    expected = torch.cat([points - strides[:, None], points + strides[:, None]], dim=1)
    torch.testing.assert_close(boxes[0], expected)
    assert boxes[0, 0].tolist() == [-4.0, -4.0, 12.0, 12.0]
    torch.testing.assert_close(scores, torch.full_like(scores, 0.25))  # 0.5 hand, 0.5 left
    torch.testing.assert_close(kpts[..., :2], raw["kpt"])
    torch.testing.assert_close(kpts[..., 2], torch.full((1, a, k), 0.5))  # 1 - mean(sigma)
    raw["kpt_logit"] = torch.full((1, a, k), math.log(3.0))
    model_no_rle = _model(CPU, input_size=64, rle=False)
    torch.testing.assert_close(model_no_rle.decode(raw)[2][..., 2], torch.full((1, a, k), 0.75))


def test_class_scores_of_both_head_kinds():
    """Handedness head: P(hand) * (P(right | hand), P(left | hand)); else two sigmoids."""
    logits = torch.tensor([[[math.log(3.0), math.log(4.0)], [-math.log(3.0), 0.0]]])
    head = _model(CPU, input_size=64)
    torch.testing.assert_close(head.class_scores(logits),
                               torch.tensor([[[0.75 * 0.2, 0.75 * 0.8], [0.125, 0.125]]]))
    plain = _model(CPU, input_size=64, handedness_head=False)
    torch.testing.assert_close(plain.class_scores(logits),
                               torch.tensor([[[0.75, 0.8], [0.25, 0.5]]]))
    # A fresh head starts at P(hand) = 0.01 and P(left | hand) = 0.5.
    _, scores, _ = head.eval()(torch.rand(1, 3, 64, 64))
    prior = torch.full(scores.shape[:2], 0.01)
    torch.testing.assert_close(scores.sum(-1), prior, atol=3e-3, rtol=0)
    torch.testing.assert_close(scores[..., 0], scores[..., 1], atol=2e-3, rtol=0)


def test_forward_raw_decoding_from_head_outputs():
    """Zero last-layer weights: box = softplus(bias) * stride, keypoints = anchors."""
    model = _model(CPU)
    with torch.no_grad():
        for branch in (*model.head.box, *model.head.kpt):
            branch[-1].weight.zero_()
        for branch in model.head.kpt:
            branch[-1].bias.zero_()
        raw = model.forward_raw(torch.rand(1, 3, 256, 256))
    points, strides = anchor_points(model.cfg)
    torch.testing.assert_close(raw["box"][0], 2.0 * strides[:, None].expand(-1, 4))
    k = model.cfg.num_keypoints
    torch.testing.assert_close(raw["kpt"][0], points[:, None].expand(-1, k, 2))
    torch.testing.assert_close(raw["kpt_sigma"], torch.full_like(raw["kpt_sigma"], 0.5))
    # Class prior: sigmoid(-4.6) ~ 0.01 for the hand logit; P(left | hand) = 0.5.
    assert abs(float(torch.sigmoid(raw["cls"][..., 0]).mean()) - 0.01) < 0.005
    assert abs(float(torch.sigmoid(raw["cls"][..., 1]).mean()) - 0.5) < 0.005


def test_focused_map_keeps_norm_and_sharpens():
    x = torch.tensor([[1.0, 2.0, 0.5, -3.0]])
    phi = focused_map(x, 3.0)
    r = torch.relu(x) + 1e-6
    torch.testing.assert_close(phi.norm(dim=-1), r.norm(dim=-1))
    cos_r = r[0, 1] / r.norm()
    cos_phi = phi[0, 1] / phi.norm()
    assert float(cos_phi) > float(cos_r)  # direction moved towards the largest component
    assert bool((phi >= 0).all())
    assert bool(torch.isfinite(focused_map(torch.full((1, 8), -1.0), 8.0)).all())


def _quadratic_attention(q, k, v):
    """Direct O(N^2) form of the same formula: w_ij = q_i.k_j / sum_j q_i.k_j."""
    w = q @ k.transpose(-2, -1)
    w = w / (w.sum(dim=-1, keepdim=True) + 1e-6)
    return w @ v


def test_linear_attention_equals_quadratic_and_is_permutation_consistent():
    torch.manual_seed(0)
    attn = FocusedLinearAttention(16, heads=4, focusing_factor=3.0).double()
    x = torch.randn(2, 16, 3, 5, dtype=torch.float64)
    q, k, v = attn.project(x)
    assert q.shape == k.shape == v.shape == (2, 4, 15, 4)
    out = linear_attention(q, k, v)
    torch.testing.assert_close(out, _quadratic_attention(q, k, v), rtol=1e-9, atol=1e-9)
    perm = torch.randperm(15)
    out_perm = linear_attention(q[:, :, perm], k[:, :, perm], v[:, :, perm])
    torch.testing.assert_close(out_perm, out[:, :, perm], rtol=1e-9, atol=1e-9)


def test_attention_block_shape_and_residual():
    torch.manual_seed(0)
    block = FocusedLinearAttentionBlock(32, heads=4, focusing_factor=3.0)
    x = torch.randn(2, 32, 6, 4)
    with torch.no_grad():
        y = block(x)
    assert y.shape == x.shape
    assert bool(torch.isfinite(y).all())
    assert float((y - x).abs().mean()) > 1e-4


def test_no_attention_modules_without_focused_attention():
    plain = create_detector("yolo_pose_cpu_256")
    assert not any(
        isinstance(m, FocusedLinearAttention | FocusedLinearAttentionBlock)
        for m in plain.modules()
    )
    assert plain.flow is None
    vt = create_detector(CPU)
    blocks = [m for m in vt.modules() if isinstance(m, FocusedLinearAttentionBlock)]
    assert len(blocks) == 2


def test_cpu_variant_parameter_count():
    model = create_detector(CPU)
    n = sum(v.numel() for v in model.inference_state_dict().values() if v.is_floating_point())
    assert n < 2_500_000, f"{CPU}: {n:,} inference parameters"


def test_inference_state_dict_and_load_weights():
    src = _model(CPU, seed=1)
    state = src.inference_state_dict()
    assert state and not any(key.startswith("flow.") for key in state)
    assert any(key.startswith("flow.") for key in src.state_dict())
    dst = _model(CPU, seed=2)
    dst.load_weights(state)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(src(x), dst(x), strict=True):
            torch.testing.assert_close(a, b)
    broken = dict(state)
    broken.pop("head.cls.0.2.bias")
    with pytest.raises(RuntimeError, match=re.escape("head.cls.0.2.bias")):
        dst.load_weights(broken)
    with pytest.raises(RuntimeError, match="unexpected"):
        dst.load_weights({**state, "extra.weight": torch.zeros(1)})


def test_create_detector_from_config_with_overrides():
    cfg = DetectorConfig(name="tiny", widths=(8, 8, 16, 16, 16), neck_width=16, head_width=16)
    model = create_detector(cfg, input_size=96, rle=False)
    assert model.cfg.input_size == 96 and model.flow is None and cfg.rle
    assert model.anchor_xy.shape == (model.cfg.num_anchors, 2)
    with pytest.raises(ValueError, match="unknown detector"):
        create_detector("nope")


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore::DeprecationWarning")
def test_onnx_export_matches_torch(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    model = _model(CPU, input_size=128)
    path = tmp_path / "detector.onnx"
    x = torch.rand(1, 3, 128, 128)
    torch.onnx.export(
        model,
        (x,),
        str(path),
        input_names=[INPUT_NAME],
        output_names=list(OUTPUT_NAMES),
        opset_version=17,
        dynamic_axes={INPUT_NAME: {0: "batch"}, **{n: {0: "batch"} for n in OUTPUT_NAMES}},
        dynamo=False,
    )
    graph = onnx.load(str(path)).graph
    assert not any("flow" in init.name for init in graph.initializer)
    assert [o.name for o in graph.output] == list(OUTPUT_NAMES)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    x2 = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(3))
    got = session.run(list(OUTPUT_NAMES), {INPUT_NAME: x2.numpy()})
    with torch.no_grad():
        expected = model(x2)
    for name, g, e in zip(OUTPUT_NAMES, got, expected, strict=True):
        np.testing.assert_allclose(g, e.numpy(), rtol=1e-4, atol=1e-4, err_msg=name)
