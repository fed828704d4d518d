"""Synthetic dataset: shard format round trip, resume, splits, CLI, contact sheet."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from hand_pose_ros.research.synth.augment import AugmentConfig


@pytest.fixture(scope="module")
def egl():
    pytest.importorskip("moderngl")
    from hand_pose_ros.research.synth.gl_renderer import create_egl_context

    try:
        create_egl_context().release()
    except RuntimeError as exc:
        pytest.skip(f"no headless OpenGL: {exc}")


def _config(kind="crops"):
    from hand_pose_ros.research.synth.generator import SynthConfig

    return SynthConfig(
        kind=kind,
        num_skin_textures=2,
        texture_size=256,
        frame_size=(320, 240),
        hand_source="standin",
        augment=AugmentConfig(jpeg_prob=0.5),
    )


def _generate(out, config, count, seed):
    from hand_pose_ros.research.synth.dataset import generate_dataset
    from hand_pose_ros.research.synth.hand_source import StandinHandSource

    return generate_dataset(
        out, config, count=count, seed=seed, workers=0, shard_size=4, progress=False,
        hand_source=StandinHandSource(),
    )  # fmt: skip


@pytest.fixture(scope="module")
def crops_dir(egl, tmp_path_factory):

    out = tmp_path_factory.mktemp("synth") / "crops"
    stats = _generate(out, _config(), count=6, seed=0)
    assert stats["samples_written"] == 6 and stats["shards_written"] == 2
    return out


def test_loader_round_trip(crops_dir):
    import torch

    from hand_pose_ros.research.synth.generator import SynthGenerator
    from hand_pose_ros.research.synth.hand_source import StandinHandSource
    from hand_pose_ros.research.synth.shards import SynthDataset

    ds = SynthDataset(crops_dir, with_masks=True)
    assert len(ds) == 6 and ds.meta["split"] == "train"
    item = ds[5]
    assert item["image"].shape == (3, 256, 256) and item["image"].dtype == torch.float32
    assert item["kp2d"].shape == (21, 2) and item["joints_cam"].shape == (21, 3)
    assert item["verts_cam"].ndim == 2 and item["verts_cam"].shape[1] == 3
    assert item["K"].shape == (3, 3) and item["visibility"].dtype == torch.bool
    assert item["mask"].shape == (256, 256) and int(item["index"]) == 5
    # Same sample regenerated in memory: labels exact, image within JPEG error.
    gen = SynthGenerator(_config(), seed=0, hand_source=StandinHandSource())
    ref = gen.sample(5)
    np.testing.assert_array_equal(item["kp2d"].numpy(), ref["hands"][0]["kp2d"])
    np.testing.assert_array_equal(item["verts_cam"].numpy(), ref["hands"][0]["verts_cam"])
    np.testing.assert_array_equal(item["mask"].numpy(), ref["mask"])
    diff = np.abs(item["image"].numpy().transpose(1, 2, 0) * 255 - ref["image"].astype(np.float32))
    assert diff.mean() < 4.0
    # K @ joints == kp2d in the stored labels too.
    p = item["joints_cam"].double() @ item["K"].double().T
    torch.testing.assert_close(p[:, :2] / p[:, 2:], item["kp2d"].double(), atol=1e-2, rtol=0)
    # Works with a torch DataLoader (default collation).
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=3)))
    assert batch["image"].shape == (3, 3, 256, 256)


def test_concatenated_folders_index_in_order(crops_dir, detection_frames_dir):
    """Two folders read as one: item i of the second is item len(first) + i of the whole,
    across shard boundaries; out-of-range indices and a folder of the wrong kind raise."""
    from hand_pose_ros.research.synth.shards import ConcatSynthDataset, SynthDataset

    both = ConcatSynthDataset([crops_dir, crops_dir])
    single = SynthDataset(crops_dir)
    assert len(both) == 2 * len(single) == 12
    for i in (0, 3, 4, 5):  # shard_size 4: 3 -> 4 crosses a shard
        np.testing.assert_array_equal(both.numpy_item(6 + i)["image"],
                                      single.numpy_item(i)["image"])  # fmt: skip
        assert int(both.numpy_item(6 + i)["index"]) == i
    for bad in (-1, 12):
        with pytest.raises(IndexError, match="out of range"):
            both.numpy_item(bad)
    with pytest.raises(ValueError, match="crops folder expected"):
        ConcatSynthDataset([crops_dir, detection_frames_dir], kind="crops")
    with pytest.raises(ValueError, match="at least one"):
        ConcatSynthDataset([])


def test_resume_skips_finished_shards(crops_dir, tmp_path):
    from hand_pose_ros.research.synth.shards import SynthDataset

    out = tmp_path / "copy"
    shutil.copytree(crops_dir, out)
    before = SynthDataset(out).numpy_item(4)
    stats = _generate(out, _config(), count=6, seed=0)
    assert stats["shards_written"] == 0 and stats["shards_skipped"] == 2
    shutil.rmtree(out / "shard_00001")
    (out / "shard_00000.tmp-999").mkdir()  # debris of an interrupted run is cleaned up
    stats = _generate(out, _config(), count=6, seed=0)
    assert stats["shards_written"] == 1 and stats["samples_written"] == 2
    assert not (out / "shard_00000.tmp-999").exists()
    after = SynthDataset(out).numpy_item(4)
    np.testing.assert_array_equal(before["joints_cam"], after["joints_cam"])
    with pytest.raises(ValueError, match="seed"):
        _generate(out, _config(), count=6, seed=1)


def test_splits_are_disjoint_by_seed():
    from hand_pose_ros.research.synth.dataset import TEST_SEEDS, TRAIN_SEEDS, split_for_seed

    assert split_for_seed(0) == "train" and split_for_seed(1_000_000) == "test"
    assert set(TRAIN_SEEDS[-3:]).isdisjoint(TEST_SEEDS)
    for bad in (-1, 2_000_000):
        with pytest.raises(ValueError, match="seed"):
            split_for_seed(bad)


def test_frames_dataset_and_contact_sheet(egl, tmp_path):
    from hand_pose_ros.research.synth.preview import save_contact_sheet
    from hand_pose_ros.research.synth.shards import SynthDataset

    out = tmp_path / "frames"
    _generate(out, _config("frames"), count=4, seed=1_000_000)
    ds = SynthDataset(out)
    assert ds.meta["split"] == "test"
    for i in range(len(ds)):
        item = ds.numpy_item(i)
        assert item["image"].shape == (240, 320, 3)
        assert item["kp2d"].shape == (2, 21, 2) and item["hand_valid"].shape == (2,)
        assert np.array_equal(item["handedness"] >= 0, item["hand_valid"])
        assert not item["joints_cam"][~item["hand_valid"]].any()
    sheet = save_contact_sheet(ds, tmp_path / "sheet.png", count=4, columns=2)
    import cv2

    img = cv2.imread(str(sheet))
    assert img.shape == (2 * 240, 2 * 320, 3)


def test_cli_synth(egl, tmp_path, capsys):
    from hand_pose_ros.cli.main import main

    out = tmp_path / "cli"
    cfg = tmp_path / "small.yaml"
    cfg.write_text("num_skin_textures: 2\ntexture_size: 128\n")
    rc = main([
        "synth", "--kind", "crops", "--count", "3", "--seed", "7", "--out", str(out),
        "--workers", "0", "--hand-source", "standin", "--quiet", "--config", str(cfg),
        "--preview", str(tmp_path / "p.png"),
    ])  # fmt: skip
    assert rc == 0
    stats = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert stats["samples_written"] == 3 and (tmp_path / "p.png").exists()
    assert json.loads((out / "meta.json").read_text())["finished"] is True
    assert (
        main(
            [
                "synth",
                "--count",
                "3",
                "--seed",
                "-5",
                "--out",
                str(tmp_path / "x"),
                "--workers",
                "0",
            ]
        )
        == 2
    )


def test_bench_synth_reports_rates(egl, capsys):
    from hand_pose_ros.cli.main import main

    rc = main(["bench", "synth", "--json", "--count", "2", "--warmup", "1", "--kinds", "crops",
               "--hand-source", "standin"])  # fmt: skip
    assert rc == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    (row,) = result["rows"]
    assert result["bench"] == "synth" and row["name"] == "crops_256x256"
    assert row["images_per_s_one_process"] > 0 and row["cpu_ms_per_image"] > 0


def test_backgrounds_from_user_folder_and_wheel(tmp_path):
    import cv2

    from hand_pose_ros.research.synth.backgrounds import BackgroundBank, skimage_data_dir

    folder = tmp_path / "bg"
    (folder / "sub").mkdir(parents=True)
    cv2.imwrite(str(folder / "sub" / "red.png"), np.full((60, 90, 3), (0, 0, 255), np.uint8))  # BGR
    (folder / "notes.txt").write_text("not an image")
    bank = BackgroundBank(0, folder, use_skimage=False)
    assert [p.name for p in bank.user_files] == ["red.png"]
    rng = np.random.default_rng(0)
    images = [bank.sample(rng, 64, 48) for _ in range(40)]
    assert all(im.shape == (48, 64, 3) and im.dtype == np.uint8 for im in images)
    # Most samples come from the user's (pure red) photo; the rest are procedural.
    red = [im for im in images if im[..., 0].min() > 200 and im[..., 1:].max() < 40]
    assert len(red) >= 15
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        BackgroundBank(0, tmp_path / "empty", use_skimage=False)
    with pytest.raises(FileNotFoundError, match="not found"):
        BackgroundBank(0, tmp_path / "missing", use_skimage=False)
    if skimage_data_dir() is not None:
        assert len(BackgroundBank(0).photos) >= 10  # the photos shipped in the wheel
