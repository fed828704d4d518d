"""Training data and training loop of the IK nets (seed 002 eq. 5-8), CPU-friendly.

Data: natural 45-DoF poses from ``PoseSampler`` (twists included) on random shapes
beta ~ N(0, I); the ground-truth 23 DoF are ``pose_to_bio`` fits of those poses (how
seed 002 makes them); the input joints are the 45-DoF hand's keypoints plus Gaussian
noise of a random level, canonicalised exactly as ``IKSolver`` does.
Loss: L1 on the rotation parameters + L1 on beta + L1 on the keypoints re-posed
through the hand model (eq. 8), the last in centimetres so the three terms have
similar sizes.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import roma
import torch
from tqdm import tqdm

from hand_ik.bio_fit import pose_to_bio
from hand_ik.biomech import bio_kinematics_for
from hand_ik.ik.alignment import rigid_align
from hand_ik.ik.features import bone_features
from hand_ik.ik.ik_net import IKNet
from hand_ik.ik.keypoint_layer import KeypointLayer
from hand_ik.ik.solver import PALM_RIGID_KEYPOINTS
from hand_ik.ik.train_config import IKTrainConfig
from hand_ik.pose_sampler import PoseSampler

log = logging.getLogger(__name__)


def make_ik_data(model, num_samples: int, seed: int, *, chunk: int = 2048) -> dict[str, np.ndarray]:
    """Poses, shapes, ground-truth 23 DoF and keypoints for IK training or evaluation.

    Returns float64 arrays: ``pose45`` (N, 45), ``betas`` (N, 10), ``bio`` (N, 23, the
    ``pose_to_bio`` fit), ``joints`` (N, 21, 3) and ``vertices`` are not stored (large);
    ``fit_error_m`` (N,) is the 45 -> 23 fit's keypoint residual.
    """
    kin = bio_kinematics_for(model)
    sampler = PoseSampler(seed)
    rng = np.random.default_rng(seed + 7919)
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("pose45", "betas", "bio", "joints",
                                                         "fit_error_m")}
    for start in tqdm(range(0, num_samples, chunk), desc=f"IK data (seed {seed})", unit="chunk"):
        n = min(chunk, num_samples - start)
        pose, _ = sampler.sample_pose45(n, kin)
        betas = np.clip(rng.normal(size=(n, 10)), -2.5, 2.5)
        pose_t = torch.as_tensor(pose, dtype=model.v_template.dtype)
        betas_t = torch.as_tensor(betas, dtype=model.v_template.dtype)
        fit = pose_to_bio(pose_t, betas_t, model=model, kinematics=kin)
        with torch.no_grad():
            joints = model(betas=betas_t, pose=pose_t).joints
        out["pose45"].append(pose)
        out["betas"].append(betas)
        out["bio"].append(fit.bio.double().numpy())
        out["joints"].append(joints.double().numpy())
        out["fit_error_m"].append(fit.keypoint_error.double().numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def canonical_inputs(model, joints: torch.Tensor) -> torch.Tensor:
    """Kabsch-canonicalise (N, 21, 3) joints onto the rest palm, as ``IKSolver`` does."""
    palm = list(PALM_RIGID_KEYPOINTS)
    with torch.no_grad():
        rest = model(betas=None).joints[0].expand(len(joints), -1, -1)
    rotation, translation = rigid_align(rest[:, palm], joints[:, palm])
    return (joints - translation[:, None]) @ rotation


def _batch_loss(net, model, kin, layer, config: IKTrainConfig, noisy, target_rot, betas,
                joints) -> tuple[torch.Tensor, ...]:  # fmt: skip
    """Total, rotation, shape and joint (cm) losses of one batch of noisy joints."""
    feats = bone_features(canonical_inputs(model, noisy))
    pred_betas, pred_rot = net(feats)
    if config.rotation == "bio":
        rot_j = kin.bio_to_rotmats(pred_rot)
    else:
        rot_j = roma.rotvec_to_rotmat(pred_rot.unflatten(-1, (15, 3)))
    eye = torch.eye(3, dtype=rot_j.dtype)
    rotmats = torch.cat([eye.expand(len(noisy), 1, 3, 3), rot_j], dim=1)
    keypoints = layer(pred_betas, rotmats)
    loss_rot = (pred_rot - target_rot).abs().mean()
    loss_beta = (pred_betas - betas).abs().mean()
    loss_joint = 100.0 * (keypoints - joints).abs().mean()
    return loss_rot + loss_beta + config.joint_loss_cm * loss_joint, loss_rot, loss_beta, loss_joint


def train_ik(model, config: IKTrainConfig, data: dict[str, np.ndarray], log_path: Path | None = None
             ) -> tuple[IKNet, list[dict]]:  # fmt: skip
    """Train an IK net; returns it (eval mode) and the per-epoch log."""
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    dtype = torch.float32
    model = model.to(dtype)
    kin = bio_kinematics_for(model)
    layer = KeypointLayer(model)
    n_rot = 23 if config.rotation == "bio" else 45
    net = IKNet(n_rot, 10, config.hidden)
    target_rot = torch.as_tensor(data["bio" if config.rotation == "bio" else "pose45"], dtype=dtype)
    betas = torch.as_tensor(data["betas"], dtype=dtype)
    joints = torch.as_tensor(data["joints"], dtype=dtype)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, config.lr_milestones, 0.1)
    history = []
    n = len(joints)
    for epoch in range(config.epochs):
        net.train()
        order = torch.randperm(n, generator=gen)
        sums = np.zeros(4)
        start_time = time.perf_counter()
        bar = tqdm(range(0, n, config.batch_size), desc=f"epoch {epoch + 1}/{config.epochs}",
                   leave=False, unit="batch")  # fmt: skip
        for start in bar:
            idx = order[start : start + config.batch_size]
            if len(idx) < 2:
                continue  # BatchNorm needs two samples
            sigma = torch.rand(len(idx), 1, 1, generator=gen) * config.noise_max_m
            noisy = joints[idx] + sigma * torch.randn(len(idx), 21, 3, generator=gen)
            loss, loss_rot, loss_beta, loss_joint = _batch_loss(
                net, model, kin, layer, config, noisy, target_rot[idx], betas[idx], joints[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sums += np.array([loss.item(), loss_rot.item(), loss_beta.item(), loss_joint.item()])
            bar.set_postfix(loss=f"{loss.item():.4f}")
        schedule.step()
        batches = max(1, len(bar))
        means = [float(v) for v in sums / batches]
        row = {"epoch": epoch + 1, "loss": means[0], "loss_rot": means[1], "loss_beta": means[2],
               "loss_joint_cm": means[3], "seconds": round(time.perf_counter() - start_time, 2)}
        history.append(row)
        log.info("epoch %d: %s", epoch + 1, row)
        if log_path is not None:
            with open(log_path, "a") as fh:
                fh.write(json.dumps(row) + "\n")
    return net.eval(), history


def config_dict(config: IKTrainConfig) -> dict:
    return asdict(config)
