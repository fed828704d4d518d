"""RealNVP flow (density, inverse, Jacobian) and the RLE keypoint loss."""

from __future__ import annotations

import pytest
import torch
from _estimation_helpers import one_torch_thread  # noqa: F401

from hand_pose_ros.detection.flow import RealNVP2D, keypoint_confidence_from_sigma, rle_loss


def _nontrivial_flow(seed: int = 0, std: float = 0.4) -> RealNVP2D:
    """A flow whose couplings visibly bend the density (default init is near-identity)."""
    gen = torch.Generator().manual_seed(seed)
    flow = RealNVP2D(hidden=16, layers=3)
    with torch.no_grad():
        for p in flow.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * std)
    return flow.double()


def test_log_density_integrates_to_one():
    flow = _nontrivial_flow()
    step = 0.05
    axis = torch.arange(-8.0, 8.0 + step / 2, step, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), dim=-1)
    with torch.no_grad():
        density = flow.log_prob(grid).exp()
        z, log_det = flow(grid)
    integral = float(density.sum()) * step * step
    assert abs(integral - 1.0) < 0.02, integral
    # Non-trivial: the density is far from the base N(0, I2).
    assert float(log_det.abs().max()) > 0.5
    assert z.shape == (grid.shape[0] * grid.shape[1], 2)


def test_inverse_of_forward_is_identity():
    flow = _nontrivial_flow(seed=1)
    x = torch.randn(3, 5, 2, dtype=torch.float64)
    with torch.no_grad():
        z, _ = flow(x)
        back = flow.inverse(z)
        again = flow(flow.inverse(x))[0]
    torch.testing.assert_close(back, x.reshape(-1, 2), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(again, x.reshape(-1, 2), rtol=1e-10, atol=1e-10)


def test_log_det_matches_autograd_jacobian():
    flow = _nontrivial_flow(seed=2)
    points = torch.tensor([[0.0, 0.0], [1.5, -0.7], [-2.0, 3.0]], dtype=torch.float64)
    with torch.no_grad():
        _, log_det = flow(points)
    for i, p in enumerate(points):
        jac = torch.autograd.functional.jacobian(lambda q: flow(q)[0][0], p)
        expected = torch.linalg.det(jac).abs().log()
        assert float(log_det[i]) == pytest.approx(float(expected), abs=1e-9)


def _loss_inputs(err_px: float, sigma: float, requires_grad: bool = False):
    n, k = 2, 3
    target = torch.rand(n, k, 2, generator=torch.Generator().manual_seed(0)) * 100
    pred = target + err_px
    sig = torch.full((n, k, 2), sigma, requires_grad=requires_grad)
    scale = torch.full((n,), 50.0)
    valid = torch.ones(n, k, dtype=torch.bool)
    return pred, sig, target, scale, valid


def test_rle_loss_prefers_correct_predictions():
    flow = RealNVP2D()
    good = rle_loss(*_loss_inputs(0.0, 0.1), flow=flow)
    bad = rle_loss(*_loss_inputs(20.0, 0.1), flow=flow)
    assert float(good.detach()) < float(bad.detach())
    assert good.ndim == 0


def test_rle_loss_gradient_shrinks_sigma_for_small_error():
    flow = RealNVP2D()
    pred, sig, target, scale, valid = _loss_inputs(0.5, 0.3, requires_grad=True)
    rle_loss(pred, sig, target, scale, valid, flow).backward()
    assert bool((sig.grad > 0).all())  # gradient descent lowers sigma
    # A large error makes sigma grow instead.
    pred, sig, target, scale, valid = _loss_inputs(40.0, 0.05, requires_grad=True)
    rle_loss(pred, sig, target, scale, valid, flow).backward()
    assert bool((sig.grad < 0).all())


def test_rle_loss_masks_invalid_keypoints():
    flow = RealNVP2D()
    pred, sig, target, scale, valid = _loss_inputs(0.0, 0.2)
    base = rle_loss(pred, sig, target, scale, valid, flow)
    target2 = target.clone()
    target2[0, 1] = float("nan")  # an unlabelled keypoint with garbage coordinates
    valid2 = valid.clone()
    valid2[0, 1] = False
    masked = rle_loss(pred, sig, target2, scale, valid2, flow)
    torch.testing.assert_close(masked, base)  # all valid residuals are identical
    none = rle_loss(pred.requires_grad_(), sig, target, scale, torch.zeros_like(valid), flow)
    assert float(none.detach()) == 0.0
    none.backward()
    assert pred.grad is not None and float(pred.grad.abs().sum()) == 0.0


def test_flow_fits_laplace_residuals():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    laplace = torch.distributions.Laplace(torch.zeros(2), torch.tensor([0.5, 1.0]))
    data = laplace.sample((512,))
    held_out = laplace.sample((2048,))
    flow = RealNVP2D(hidden=32, layers=2)
    opt = torch.optim.Adam(flow.parameters(), lr=1e-2)
    with torch.no_grad():
        before = float(-flow.log_prob(held_out).mean())
    for _ in range(300):
        batch = data[torch.randint(0, len(data), (128,), generator=gen)]
        loss = -flow.log_prob(batch).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = float(-flow.log_prob(held_out).mean())
    true_nll = float(-laplace.log_prob(held_out).sum(-1).mean())
    assert after < before - 0.1, (before, after, true_nll)
    assert after < true_nll + 0.25, (before, after, true_nll)


def test_keypoint_confidence_from_sigma():
    sigma = torch.tensor([[[0.1, 0.3], [1.0, 0.0]]])
    torch.testing.assert_close(keypoint_confidence_from_sigma(sigma), torch.tensor([[0.8, 0.5]]))
