"""Lixel maths: soft-argmax on hand-made heatmaps, Gaussian heatmaps, unit conversions."""

from __future__ import annotations

import pytest
import torch

from hand_pose_ros.estimation.lixel import (
    depth_to_lixel,
    gaussian_heatmap_3d,
    input_pixels_to_lixel,
    lixel_to_depth,
    lixel_to_input_pixels,
    soft_argmax_1d,
)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_soft_argmax_sharp_peak_is_its_index(dtype):
    logits = torch.full((3, 64), -1e4, dtype=dtype)
    for row, idx in enumerate((0, 17, 63)):
        logits[row, idx] = 0.0
    coord, mass = soft_argmax_1d(logits)
    torch.testing.assert_close(coord, torch.tensor([0.0, 17.0, 63.0], dtype=dtype))
    torch.testing.assert_close(mass, torch.ones(3, dtype=dtype))


def test_soft_argmax_two_equal_peaks_give_the_midpoint_and_flat_gives_centre():
    logits = torch.full((1, 64), -1e4)
    logits[0, 10] = logits[0, 20] = 0.0
    coord, mass = soft_argmax_1d(logits, radius=2.0)
    assert coord.item() == pytest.approx(15.0)
    assert mass.item() == pytest.approx(0.0, abs=1e-6)  # no mass within 2 bins of 15
    coord, mass = soft_argmax_1d(torch.zeros(1, 64), radius=2.0)
    assert coord.item() == pytest.approx(31.5)
    assert mass.item() == pytest.approx(4 / 64)  # bins 30..33 are within 2 of 31.5


def test_soft_argmax_of_a_gaussian_recovers_a_subbin_position():
    idx = torch.arange(64, dtype=torch.float64)
    logits = -0.5 * ((idx - 23.3) / 1.5) ** 2  # log of a Gaussian
    coord, mass = soft_argmax_1d(logits)
    assert coord.item() == pytest.approx(23.3, abs=1e-6)
    assert 0.8 < mass.item() < 1.0


def test_gaussian_heatmap_peaks_at_the_joint():
    coords = torch.tensor([[[3.0, 5.0, 7.0], [10.0, 2.0, 0.0]]])
    heat = gaussian_heatmap_3d(coords, bins=16, sigma=1.0)
    assert heat.shape == (1, 2, 16, 16, 16)
    for j, (x, y, z) in enumerate(coords[0].long().tolist()):
        flat = int(heat[0, j].argmax())
        assert divmod(flat, 256)[0] == z and divmod(flat % 256, 16) == (y, x)
        assert heat[0, j, z, y, x].item() == pytest.approx(1.0)
    # separable form equals the direct 3D formula
    zz, yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), torch.arange(16.0),
                                indexing="ij")  # fmt: skip
    direct = torch.exp(-((xx - 3) ** 2 + (yy - 5) ** 2 + (zz - 7) ** 2) / 2)
    torch.testing.assert_close(heat[0, 0], direct)


def test_pixel_and_depth_conversions_round_trip_and_anchor():
    xy = torch.rand(10, 2, dtype=torch.float64) * 63
    torch.testing.assert_close(
        input_pixels_to_lixel(lixel_to_input_pixels(xy, 256, 64), 256, 64), xy
    )
    # bin 0 covers input pixels 0..3: its centre is pixel 1.5
    assert lixel_to_input_pixels(torch.zeros(2), 256, 64)[0].item() == pytest.approx(1.5)
    z = torch.rand(10, dtype=torch.float64) * 63
    torch.testing.assert_close(depth_to_lixel(lixel_to_depth(z, 64, 0.15), 64, 0.15), z)
    assert lixel_to_depth(torch.tensor(31.5), 64, 0.15).item() == pytest.approx(0.0)
    assert lixel_to_depth(torch.tensor(-0.5), 64, 0.15).item() == pytest.approx(-0.15)
