"""Shared helpers of the estimation tests (built models are cached for the whole session)."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from hand_pose_ros.estimation import create_mesh_net, estimator_config


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Run torch on one thread in these tests (restored afterwards).

    On the shared 2-core CI/dev machines, torch's 2-thread OpenMP pool stalls whenever the
    other core is busy: measured 0.03 s -> 5 s for the same forward pass.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


#: Input size of every variant in the fast tests (16 lixel bins): same graph, small tensors.
SMALL_INPUT = 64


def small_input_size(name: str) -> int:
    """Input size used for ``name`` in the tests (SMALL_INPUT, never above the native size)."""
    return min(estimator_config(name).input_size, SMALL_INPUT)


@functools.cache
def calibrated_model(name: str) -> nn.Module:
    """Seeded random-init variant whose outputs depend on the input and spread over bins.

    Random init alone gives near-constant outputs in eval mode (activations vanish through
    untrained BN), which would make parity tests vacuous. So: BN running statistics are
    calibrated on 4 random images (cumulative average), each BN's variances are floored at
    their layer mean (variances estimated from 4 images can be ~0 and then amplify float
    rounding by orders of magnitude: an ill-conditioned net, not an export error), and the
    lixel heads are scaled x20 so heatmaps are peaked. No training, no data.
    """
    torch.manual_seed(0)
    model = create_mesh_net(name, input_size=small_input_size(name))
    norms = [m for m in model.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    for norm in norms:
        norm.momentum = None
    model.train()
    size = model.cfg.input_size
    with torch.no_grad():
        model(torch.randn(4, 3, size, size, generator=torch.Generator().manual_seed(1)))
        for norm in norms:
            norm.running_var.clamp_(min=norm.running_var.mean().item())
        for head in (model.pose_net, model.mesh_net):
            for conv in (head.conv_x, head.conv_y, head.conv_z_2):
                conv.weight.mul_(20.0)
    return model.eval()
