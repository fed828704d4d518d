"""Mesh estimator training (``hand-teleop train meshnet``), evaluation metrics, shipped weights.

The fixture ``test/data/meshnet_synth_fixture.npz`` holds samples 0-5 of the synthetic
test split (``hand-teleop synth --kind crops --seed 1000000``, open hand model; samples 2
and 4 are left hands), so these tests need no renderer.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from hand_pose_ros.research.synth.shards import HAND_FIELDS

DATA = Path(__file__).parent / "data"
WEIGHTS = Path(__file__).resolve().parents[1] / "hand_pose_ros" / "weights"


def _fixture_samples() -> list[dict]:
    z = np.load(DATA / "meshnet_synth_fixture.npz")
    off = z["jpeg_offsets"]
    out = []
    for i in range(len(z["K"])):
        img = cv2.imdecode(z["jpeg"][off[i] : off[i + 1]], cv2.IMREAD_COLOR)[..., ::-1]
        hand = {name: z[name][i] for name in HAND_FIELDS}
        out.append({"image": np.ascontiguousarray(img), "K": z["K"][i], "hands": [hand],
                    "index": int(z["index"][i])})  # fmt: skip
    return out


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: small batches gain nothing from more, and on a busy 2-core machine
    a second OpenMP thread stalls the pool (tens of times slower)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def samples():
    return _fixture_samples()


@pytest.fixture(scope="module")
def synth_dir(samples, tmp_path_factory):
    """The fixture samples as a synthetic crops dataset folder (two shards)."""
    from hand_pose_ros.research.synth.shards import write_shard

    root = tmp_path_factory.mktemp("meshnet") / "crops"
    root.mkdir()
    meta = json.loads((DATA / "meshnet_synth_fixture.json").read_text())["meta"]
    meta.update(count=len(samples), shard_size=3)
    (root / "meta.json").write_text(json.dumps(meta))
    for s in range(2):
        part = samples[3 * s : 3 * s + 3]
        write_shard(root / f"shard_{s:05d}", [p["index"] for p in part], part, 1, 778,
                    masks=False)  # fmt: skip
    return root


@pytest.fixture(scope="module")
def freihand_dir(samples, tmp_path_factory):
    """Right-hand fixture samples written in FreiHAND's public layout."""
    root = tmp_path_factory.mktemp("freihand")
    right = [s for s in samples if int(s["hands"][0]["handedness"]) == 0][:3]
    (root / "training" / "rgb").mkdir(parents=True)
    for i, s in enumerate(right):
        img = cv2.resize(s["image"], (224, 224), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(root / "training" / "rgb" / f"{i:08d}.jpg"), img[..., ::-1])
    k = np.stack([s["K"] for s in right]).astype(np.float64)
    k[:, :2] *= 224 / 256  # resized crop: scale fx, fy, cx, cy (pixel centres ~ unchanged)
    labels = {"xyz": [s["hands"][0]["joints_cam"] for s in right], "K": k,
              "verts": [s["hands"][0]["verts_cam"] for s in right],
              "mano": np.zeros((len(right), 1, 61))}  # fmt: skip
    for name, arr in labels.items():
        (root / f"training_{name}.json").write_text(json.dumps(np.asarray(arr).tolist()))
    return root


def _args(data: list[str], out: Path, **kw) -> argparse.Namespace:
    from hand_pose_ros.research.estimation import train

    parser = argparse.ArgumentParser()
    train.add_arguments(parser)
    argv = ["--model", "cpu_effb0_w05_128", "--out", str(out), "--quiet", "--threads", "1"]
    for d in data:
        argv += ["--data", d]
    for key, value in kw.items():
        argv += [f"--{key.replace('_', '-')}", *([] if value is True else [str(value)])]
    return parser.parse_args(argv)


def _fixed_loss(trainer) -> float:
    import torch

    batch = {k: torch.stack([trainer.dataset[i][k] for i in range(len(trainer.dataset))])
             for k in ("image", "joints_lixel", "verts_lixel", "mesh_valid")}  # fmt: skip
    with torch.no_grad():  # train mode (batch statistics), as the optimised loss
        return float(trainer.loss(batch).total)


def test_targets_decode_back_to_labels(samples):
    """Lixel targets (incl. mirrored left hands and a random similarity of the crop) decode
    through the runtime's postprocess to the labelled 2D keypoints and 3D joints."""
    from hand_pose_ros.estimation import estimator_config
    from hand_pose_ros.estimation.prepost import postprocess
    from hand_pose_ros.research.estimation.train_data import make_sample, project

    cfg = estimator_config("cpu_effb0_w05_128")
    for s in samples:
        hand = s["hands"][0]
        item = {"image": s["image"], "K": s["K"], **hand}
        t = make_sample(item, cfg.input_size, cfg.depth_range_m)  # no augmentation
        left = int(hand["handedness"]) == 1
        k = np.array(s["K"], np.float64)
        if left:
            k[0, 2] = 255 - k[0, 2]
        obs = postprocess(t["joints_lixel"], t["verts_lixel"], np.ones(21), (256, 256), k, cfg,
                          root_depth=float(hand["joints_cam"][0, 2]))  # fmt: skip
        joints = obs.joints_cam * ([-1, 1, 1] if left else 1)
        np.testing.assert_allclose(joints, hand["joints_cam"], atol=2e-4)  # 0.2 mm
        uv = project(hand["joints_cam"], s["K"])
        if left:
            uv[:, 0] = 255 - uv[:, 0]
        np.testing.assert_allclose(obs.uv, uv, atol=1e-2)
    # Augmented: joint z unchanged, x/y moved by one similarity of the crop.
    rng = np.random.default_rng(0)
    t0 = make_sample(item, cfg.input_size, cfg.depth_range_m)
    t1 = make_sample(item, cfg.input_size, cfg.depth_range_m, rng)
    np.testing.assert_allclose(t1["joints_lixel"][:, 2], t0["joints_lixel"][:, 2], atol=1e-5)
    a = np.c_[t0["joints_lixel"][:, :2], np.ones(21)]
    fit, *_ = np.linalg.lstsq(a, t1["joints_lixel"][:, :2], rcond=None)
    np.testing.assert_allclose(a @ fit, t1["joints_lixel"][:, :2], atol=1e-3)
    assert t1["image"].shape == (3, 128, 128) and not np.allclose(t1["image"], t0["image"])


def test_training_lowers_loss_and_checkpoint_round_trips(synth_dir, tmp_path):
    import torch

    from hand_pose_ros.research.estimation.train import Trainer

    args = _args([str(synth_dir)], tmp_path / "w.pt", steps=12, batch_size=6, lr=2e-3,
                 no_augment=True)  # fmt: skip
    args.lr_milestones = []
    trainer = Trainer(args)
    before = _fixed_loss(trainer)
    trainer.train(tmp_path / "log.jsonl", quiet=True)
    saved = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    after = _fixed_loss(trainer)
    assert after < 0.8 * before, (before, after)
    lines = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert lines and lines[-1]["step"] == 12 and lines[-1]["samples_per_s"] > 0
    # Checkpoint: a fresh trainer resumes the exact state (weights, Adam moments, step).
    assert trainer.ckpt_path.is_file()
    other = Trainer(args)
    other.load_checkpoint(trainer.ckpt_path)
    assert other.step == 12
    for (k, a), (_, b) in zip(saved.items(), other.model.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, msg=k)
    sa, sb = trainer.optimizer.state_dict()["state"], other.optimizer.state_dict()["state"]
    torch.testing.assert_close(sa[0]["exp_avg"], sb[0]["exp_avg"])
    # The next batch after resuming is the one the uninterrupted run would see.
    torch.testing.assert_close(next(trainer.batches())["image"], next(other.batches())["image"])
    bad = _args([str(synth_dir)], tmp_path / "w.pt", steps=12, batch_size=6, seed=1)
    with pytest.raises(ValueError, match="seed"):
        Trainer(bad).load_checkpoint(trainer.ckpt_path)


def test_cli_freihand_and_weights_manifest(freihand_dir, synth_dir, tmp_path):
    import torch

    from hand_pose_ros.estimation.mesh_estimator import build_network
    from hand_pose_ros.research.estimation import train
    from hand_pose_ros.research.estimation.evaluate import open_eval_set

    out = tmp_path / "fh.pt"
    args = _args([f"freihand:{freihand_dir}", str(synth_dir)], out, steps=2, batch_size=3,
                 test_data=f"freihand:{freihand_dir}")  # fmt: skip
    assert train.run(args) == 0
    manifest = json.loads(out.with_suffix(".json").read_text())
    assert manifest["training"]["steps"] == 2 and manifest["model"] == "cpu_effb0_w05_128"
    assert manifest["training_data"][0] == {"spec": f"freihand:{freihand_dir}",
                                            "kind": "freihand", "count": 3}  # fmt: skip
    assert manifest["training_data"][1]["seed"] == 1000000
    assert manifest["metrics"]["count"] == 3 and "pa_mpjpe_mm" in manifest["metrics"]
    state = torch.load(out, weights_only=True)
    assert state["pose_net.conv_x.weight"].dtype == torch.float16
    build_network("cpu_effb0_w05_128", out)  # fp16 weights load into the fp32 network
    fh = open_eval_set(f"freihand:{freihand_dir}")
    item = fh[0]
    assert item.image.shape == (224, 224, 3) and not item.left and item.verts_cam is not None
    # `hand-teleop bench estimator --data ... --weights ...`: accuracy rows and a sheet.
    from hand_pose_ros.benchmarks import estimator as bench_estimator

    parser = argparse.ArgumentParser()
    bench_estimator.add_arguments(parser)
    bench = parser.parse_args(["--backend", "torch", "--data", str(synth_dir), "--weights",
                               str(out), "--no-mediapipe", "--no-handtrack",
                               "--sheet", str(tmp_path / "s.png")])
    result = bench_estimator.run(bench)
    (row,) = result["rows"]
    keys = {"pa_mpjpe_mm", "mpjpe_mm", "pa_mpvpe_mm", "f_5mm", "f_15mm", "pck_0.04", "pck_0.06",
            "pck_0.08", "pck_0.10", "pck_0.12", "auc", "valid_rate", "ms_per_frame_median"}
    assert keys <= set(row) and row["count"] == 6 and row["name"] == "cpu_effb0_w05_128"
    assert cv2.imread(str(tmp_path / "s.png")).shape == (2 * 256, 6 * 256, 3)


def test_metrics_on_hand_made_cases():
    from hand_pose_ros.research.estimation.evaluate import accuracy_metrics

    rng = np.random.default_rng(0)
    gt = rng.normal(0.0, 0.04, (2, 21, 3)) + np.array([0.0, 0.0, 0.5])
    # A similarity transform of the truth: PA-MPJPE 0; a pure shift: root-relative MPJPE 0.
    ang = 0.3
    rot = np.array([[np.cos(ang), -np.sin(ang), 0], [np.sin(ang), np.cos(ang), 0], [0, 0, 1]])
    pred = 1.2 * gt @ rot.T + [0.01, -0.02, 0.03]
    uv = rng.uniform(0, 256, (2, 21, 2))
    # 2D: 10 of 21 keypoints off by 12.8 px = 0.05 of a 256 px crop, the rest exact.
    puv = uv.copy()
    puv[:, :10, 0] += 12.8
    m = accuracy_metrics(pred, gt, puv, uv, np.full(2, 256.0), pred, gt)
    assert m["pa_mpjpe_mm"] < 1e-6 and m["pa_mpvpe_mm"] < 1e-6 and m["f_5mm"] == 1.0
    assert m["pck_0.04"] == pytest.approx(11 / 21) and m["pck_0.06"] == 1.0
    # AUC on [0, 0.12]: exact points count everywhere, shifted ones from 0.05 on.
    assert m["auc"] == pytest.approx(11 / 21 + 10 / 21 * (0.12 - 0.05) / 0.12, abs=0.01)
    shifted = gt + np.array([0.02, 0.0, 0.0])
    m = accuracy_metrics(shifted, gt, uv, uv, np.full(2, 256.0))
    assert m["mpjpe_mm"] < 1e-6 and "pa_mpvpe_mm" not in m and m["pck_0.04"] == 1.0
    # A 3 mm error on every joint along x, after root alignment: 3 mm (wrist fixed).
    bent = gt.copy()
    bent[:, 1:, 0] += 0.003
    m = accuracy_metrics(bent, gt, uv, uv, np.full(2, 256.0))
    assert m["mpjpe_mm"] == pytest.approx(3.0 * 20 / 21, rel=1e-6)


def test_oracle_predictor_mirrors_left_hands(synth_dir):
    """Feeding the lixel targets back as the 'network output' scores ~0 on every metric,
    left hands included: the evaluation mirrors in and out consistently."""
    from hand_pose_ros.estimation import estimator_config
    from hand_pose_ros.estimation.prepost import postprocess
    from hand_pose_ros.research.estimation import evaluate as ev
    from hand_pose_ros.research.estimation.train_data import make_sample

    cfg = estimator_config("cpu_effb0_w05_128")
    data = ev.open_eval_set(synth_dir)
    assert sum(it.left for it in data) == 2
    truth = {}

    def estimate(crop, K, root_depth):
        t = truth["sample"]
        return postprocess(t["joints_lixel"], t["verts_lixel"], np.ones(21), crop.shape[:2], K,
                           cfg, root_depth)  # fmt: skip

    predict = ev.estimator_predictor(estimate)

    def oracle(item):
        raw = {"image": item.image, "K": item.K, "joints_cam": item.joints_cam,
               "verts_cam": item.verts_cam, "handedness": int(item.left)}  # fmt: skip
        truth["sample"] = make_sample(raw, cfg.input_size, cfg.depth_range_m)
        return predict(item)

    row = ev.evaluate(oracle, data)
    assert row["valid_rate"] == 1.0 and row["count"] == 6
    assert row["pa_mpjpe_mm"] < 0.2 and row["mpjpe_mm"] < 0.2 and row["pa_mpvpe_mm"] < 0.2
    assert row["pck_0.04"] == 1.0 and row["f_5mm"] == 1.0


def test_real_crops_layout(tmp_path, samples):
    """A handgraph_dev-style folder (cm joints, 4-number crop K) loads in metres; the hand
    side comes from the joints' chirality."""
    from hand_pose_ros.research.estimation.evaluate import open_eval_set

    (tmp_path / "images").mkdir()
    left = [s for s in samples if int(s["hands"][0]["handedness"]) == 1]
    for i, s in enumerate(left):
        cv2.imwrite(str(tmp_path / "images" / f"{i:05d}.jpg"), s["image"][..., ::-1])
    j = np.stack([s["hands"][0]["joints_cam"] for s in left]) * 100.0
    k = np.stack([[s["K"][0, 0], s["K"][1, 1], s["K"][0, 2], s["K"][1, 2]] for s in left])
    np.savez(tmp_path / "labels.npz", image_path=[f"images/{i:05d}.jpg" for i in range(len(j))],
             joints_cam_cm=j, K_crop256=k)  # fmt: skip
    data = open_eval_set(tmp_path)
    item = data[0]
    assert len(data) == 2 and item.left and item.verts_cam is None
    np.testing.assert_allclose(item.joints_cam, left[0]["hands"][0]["joints_cam"], rtol=1e-5)
    np.testing.assert_allclose(item.K, left[0]["K"], rtol=1e-6)


def _shipped():
    manifests = sorted(WEIGHTS.glob("*.json")) if WEIGHTS.is_dir() else []
    manifests = [m for m in manifests  # the detector's manifests live there too
                 if json.loads(m.read_text()).get("format") == "hand_pose_ros.estimator_weights/1"]
    return manifests or [None]


@pytest.mark.parametrize("manifest", _shipped(), ids=lambda p: p.stem if p else "none")
def test_shipped_weights_predict_fixture(manifest, synth_dir):
    """Shipped weights load and, on the 6 fixed synthetic test crops (labelled root depth),
    predict joints within the error their manifest states (``fixture_check``)."""
    if manifest is None:
        pytest.skip(f"no trained estimator weights shipped in {WEIGHTS}")
    from hand_pose_ros.estimation.mesh_estimator import MeshEstimator
    from hand_pose_ros.research.estimation import evaluate as ev

    meta = json.loads(manifest.read_text())
    est = MeshEstimator(meta["model"], weights=manifest.with_suffix(".pt"))
    row = ev.evaluate(ev.estimator_predictor(est.estimate), ev.open_eval_set(synth_dir))
    check = meta["fixture_check"]
    assert row["valid_rate"] == 1.0
    assert row["pa_mpjpe_mm"] < check["pa_mpjpe_mm_max"], row
    assert row["pck_0.10"] >= check["pck_0.10_min"], row


@pytest.mark.parametrize("left", [False, True])
def test_ik_predictor_refits_exact_joints(left):
    """Estimator + IK + post-opt (Table 5's last row) keeps an exact answer exact."""
    import torch

    from hand_ik import load_hand_model
    from hand_ik.ik.solver import IKSolver
    from hand_pose_ros.research.estimation.evaluate import EvalItem, Prediction, ik_predictor

    torch.set_num_threads(1)
    model = load_hand_model("open")
    with torch.no_grad():
        joints = model(betas=None).joints[0].double().numpy()
    joints = joints - joints[0] + np.array([0.02, -0.01, 0.5])
    if left:
        joints[:, 0] *= -1.0
    K = np.array([[500.0, 0.0, 127.5], [0.0, 500.0, 127.5], [0.0, 0.0, 1.0]])
    item = EvalItem(np.zeros((256, 256, 3), np.uint8), K, joints, None, left)
    pred = ik_predictor(lambda it: Prediction(it.joints_cam, np.zeros((21, 2))),
                        IKSolver(model))(item)  # fmt: skip
    assert pred is not None
    err_mm = 1e3 * np.linalg.norm(pred.joints_cam - joints, axis=-1).max()
    assert err_mm < 3.0, err_mm
    uv = joints @ K.T
    np.testing.assert_allclose(pred.uv, uv[:, :2] / uv[:, 2:], atol=3.0)
