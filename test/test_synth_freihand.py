"""FreiHAND loader on a tiny fixture written in the real dataset's layout."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest


@pytest.fixture
def freihand_root(tmp_path):
    rng = np.random.default_rng(0)
    n = 3
    xyz = rng.uniform([-0.05, -0.05, 0.5], [0.05, 0.05, 0.7], size=(n, 21, 3))
    K = np.tile(np.array([[480.0, 0, 112], [0, 480.0, 112], [0, 0, 1]]), (n, 1, 1))
    mano = rng.normal(size=(n, 1, 61))
    verts = rng.uniform([-0.05, -0.05, 0.5], [0.05, 0.05, 0.7], size=(n, 778, 3))
    for name, arr in (("xyz", xyz), ("K", K), ("mano", mano), ("verts", verts)):
        (tmp_path / f"training_{name}.json").write_text(json.dumps(arr.tolist()))
    rgb = tmp_path / "training" / "rgb"
    mask = tmp_path / "training" / "mask"
    rgb.mkdir(parents=True)
    mask.mkdir(parents=True)
    for i in range(2 * n):  # two of the four image versions present
        img = np.full((224, 224, 3), 20 * i, np.uint8)
        cv2.imwrite(str(rgb / f"{i:08d}.jpg"), img)
    for i in range(n):
        cv2.imwrite(str(mask / f"{i:08d}.jpg"), np.full((224, 224), 255, np.uint8))
    return tmp_path, xyz, K, mano, verts


def test_freihand_layout_to_sample_format(freihand_root):
    import torch

    from hand_pose_ros.research.synth.freihand import FreiHANDDataset

    root, xyz, K, mano, verts = freihand_root
    ds = FreiHANDDataset(root, with_masks=True)
    assert len(ds) == 6  # versions with all images present: 0 and 1
    item = ds.numpy_item(4)  # version 1 of label 1
    assert item["image"].shape == (224, 224, 3) and abs(int(item["image"].mean()) - 80) <= 2
    np.testing.assert_allclose(item["joints_cam"], xyz[1], rtol=1e-6)
    p = xyz[1] @ K[1].T
    np.testing.assert_allclose(item["kp2d"], p[:, :2] / p[:, 2:], rtol=1e-5)
    np.testing.assert_allclose(item["verts_cam"], verts[1], rtol=1e-6)
    np.testing.assert_allclose(item["betas"], mano[1, 0, 48:58], rtol=1e-6)
    np.testing.assert_allclose(item["pose"], mano[1, 0, 3:48], rtol=1e-6)
    np.testing.assert_allclose(item["global_orient"], mano[1, 0, :3], rtol=1e-6)
    assert item["mask"].all() and item["handedness"] == 0 and np.isnan(item["bio"]).all()
    x0, _, _, y1 = item["box_xyxy"]
    assert (item["kp2d"][:, 0] >= x0).all() and (item["kp2d"][:, 1] <= y1).all()
    t = ds[0]
    assert t["image"].shape == (3, 224, 224) and t["image"].dtype == torch.float32
    # Same keys as the synthetic crops loader (plus nothing FreiHAND-only).
    from hand_pose_ros.research.synth.shards import HAND_FIELDS

    assert set(HAND_FIELDS) | {"image", "K", "index", "mask"} == set(item)


def test_freihand_missing_files_fail_clearly(tmp_path):
    from hand_pose_ros.research.synth.freihand import FreiHANDDataset

    with pytest.raises(FileNotFoundError, match=r"training_xyz\.json"):
        FreiHANDDataset(tmp_path)
