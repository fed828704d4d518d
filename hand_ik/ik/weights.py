"""Saving and loading IK net weights, tied to the hand model they were trained for.

A weights file ``NAME.pt`` (a plain state dict) has a manifest ``NAME.json``: what it
is, the network size, the hand model fingerprint, the training config, data seed and
measured metrics, and the file's sha256. Loading checks all of it and fails with a
message naming the file and how to rebuild it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from hand_ik.ik.ik_net import IKNet

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "ik_bio23_open.pt"
REBUILD_HINT = "rebuild with `hand-teleop train ik` (or restore the file from git)"


def model_fingerprint(model) -> str:
    """Short hash of a hand model's template, regressor and shape space (float32 bytes)."""
    digest = hashlib.sha256()
    for name in ("v_template", "J_regressor", "shapedirs"):
        digest.update(getattr(model, name).detach().cpu().to(torch.float32).numpy().tobytes())
    digest.update(np.asarray(model.tip_vertex_ids.cpu()).astype(np.int64).tobytes())
    return digest.hexdigest()[:16]


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def save_ik_weights(net: IKNet, path: Path, model, manifest: dict) -> None:
    """Write ``path`` (state dict) and its manifest ``path.with_suffix('.json')``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().to(torch.float32) for k, v in net.state_dict().items()}
    torch.save(state, path)
    full = {
        "what": "IK net of seed 002 Fig. 6A (bone features -> betas + rotation parameters)",
        "num_rotation_params": net.num_rotation_params,
        "num_betas": net.num_betas,
        "hidden": net.beta_head.in_features,
        "hand_model": {"name": model.name, "side": model.side,
                       "fingerprint": model_fingerprint(model)},
        **manifest,
        "sha256": file_sha256(path),
    }  # fmt: skip
    path.with_suffix(".json").write_text(json.dumps(full, indent=2) + "\n")


def load_ik_weights(path, model) -> IKNet:
    """Load an IK net for ``model``; ``"default"`` is the shipped 23-DoF net.

    Raises:
        FileNotFoundError: weights or manifest missing.
        ValueError: corrupt file (sha256 mismatch) or trained for another hand model.
    """
    path = DEFAULT_WEIGHTS if str(path) == "default" else Path(path)
    manifest_path = path.with_suffix(".json")
    for p in (path, manifest_path):
        if not p.is_file():
            raise FileNotFoundError(f"IK weights file missing: {p}; {REBUILD_HINT}")
    manifest = json.loads(manifest_path.read_text())
    if file_sha256(path) != manifest.get("sha256"):
        raise ValueError(f"{path}: sha256 does not match {manifest_path.name} (corrupt?); "
                         f"{REBUILD_HINT}")  # fmt: skip
    expected = manifest["hand_model"]["fingerprint"]
    actual = model_fingerprint(model)
    if expected != actual:
        raise ValueError(
            f"{path} was trained for hand model {manifest['hand_model']['name']!r} "
            f"(fingerprint {expected}), not for this one ({model.name!r}, {actual}); "
            f"train IK weights for it with `hand-teleop train ik --hand-model ...`"
        )
    net = IKNet(manifest["num_rotation_params"], manifest["num_betas"], manifest["hidden"])
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return net.to(model.v_template.dtype).eval()
