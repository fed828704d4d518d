"""Backbone parameter names and shapes equal torchvision's, so ImageNet state dicts load.

The expected keys/shapes below are written by hand from torchvision's ResNet-50 and
EfficientNet-B0 definitions (``Conv2dNormActivation`` = conv ``.0`` + BN ``.1``; MBConv
``block.*``; SE ``fc1``/``fc2`` with squeeze = block input channels // 4), not generated
by our code. torchvision cannot be imported here, so no real checkpoint is used.
"""

from __future__ import annotations

import pytest
import torch
from _estimation_helpers import one_torch_thread  # noqa: F401

from hand_pose_ros.estimation.backbones import (
    EfficientNetB0Backbone,
    ResNet50Backbone,
    load_backbone_weights,
)

EFFICIENTNET_B0_KEYS = {
    "features.0.0.weight": (32, 3, 3, 3),
    "features.0.1.running_var": (32,),
    "features.1.0.block.0.0.weight": (32, 1, 3, 3),
    "features.1.0.block.1.fc1.weight": (8, 32, 1, 1),
    "features.1.0.block.1.fc2.bias": (32,),
    "features.1.0.block.2.0.weight": (16, 32, 1, 1),
    "features.2.0.block.0.0.weight": (96, 16, 1, 1),
    "features.2.0.block.1.0.weight": (96, 1, 3, 3),
    "features.2.0.block.2.fc1.weight": (4, 96, 1, 1),
    "features.2.1.block.2.fc1.weight": (6, 144, 1, 1),
    "features.3.0.block.1.0.weight": (144, 1, 5, 5),
    "features.6.3.block.3.0.weight": (192, 1152, 1, 1),
    "features.7.0.block.3.1.weight": (320,),
    "features.8.0.weight": (1280, 320, 1, 1),
    "features.8.1.num_batches_tracked": (),
}
#: torchvision efficientnet_b0: 5,288,548 parameters, of which classifier 1,281,000.
EFFICIENTNET_B0_FEATURE_PARAMS = 4_007_548

RESNET50_KEYS = {
    "conv1.weight": (64, 3, 7, 7),
    "bn1.running_mean": (64,),
    "layer1.0.conv1.weight": (64, 64, 1, 1),
    "layer1.0.conv2.weight": (64, 64, 3, 3),
    "layer1.0.conv3.weight": (256, 64, 1, 1),
    "layer1.0.downsample.0.weight": (256, 64, 1, 1),
    "layer1.0.downsample.1.weight": (256,),
    "layer2.0.conv2.weight": (128, 128, 3, 3),
    "layer3.5.bn3.bias": (1024,),
    "layer4.2.conv3.weight": (2048, 512, 1, 1),
}
#: torchvision resnet50: 25,557,032 parameters, of which fc 2,049,000.
RESNET50_FEATURE_PARAMS = 23_508_032


@pytest.mark.parametrize(
    ("cls", "keys", "n_params"),
    [
        (EfficientNetB0Backbone, EFFICIENTNET_B0_KEYS, EFFICIENTNET_B0_FEATURE_PARAMS),
        (ResNet50Backbone, RESNET50_KEYS, RESNET50_FEATURE_PARAMS),
    ],
)
def test_torchvision_names_shapes_and_counts(cls, keys, n_params):
    state = cls().state_dict()
    for key, shape in keys.items():
        assert key in state, key
        assert tuple(state[key].shape) == shape, key
    assert sum(p.numel() for p in cls().parameters()) == n_params


def test_efficientnet_has_no_extra_stage():
    state = EfficientNetB0Backbone().state_dict()
    assert not any(k.startswith("features.9") for k in state)
    assert not any(k.startswith("layer5") for k in ResNet50Backbone().state_dict())


def test_load_torchvision_style_file_with_classifier(tmp_path):
    torch.manual_seed(0)
    src = EfficientNetB0Backbone()
    state = {k: v + 0.5 if v.is_floating_point() else v for k, v in src.state_dict().items()}
    state["classifier.1.weight"] = torch.zeros(1000, 1280)  # torchvision's head: dropped
    state["classifier.1.bias"] = torch.zeros(1000)
    path = tmp_path / "efficientnet_b0.pth"
    torch.save(state, path)
    dst = EfficientNetB0Backbone()
    load_backbone_weights(dst, path)
    torch.testing.assert_close(dst.features[8][0].weight, state["features.8.0.weight"])


def test_load_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.pth"):
        load_backbone_weights(ResNet50Backbone(), tmp_path / "missing.pth")
    path = tmp_path / "half_width.pth"
    torch.save(EfficientNetB0Backbone(width_mult=0.5).state_dict(), path)
    with pytest.raises(ValueError, match="shape mismatch"):
        load_backbone_weights(EfficientNetB0Backbone(), path)


def test_entry_points_compose_to_the_full_backbone():
    torch.manual_seed(0)
    for net in (EfficientNetB0Backbone(width_mult=0.5).eval(), ResNet50Backbone().eval()):
        x = torch.randn(1, 3, 64, 64)
        with torch.no_grad():
            torch.testing.assert_close(net.forward_from(net.forward_early(x), 4),
                                       net.forward_from(x, 1))  # fmt: skip
    with pytest.raises(ValueError, match="stride"):
        ResNet50Backbone().forward_from(torch.zeros(1, 64, 16, 16), 2)
