"""Named 45-DoF poses (flat, rest, fist, pinch, point) for viewing and tests.

Axes come from the rest geometry of the model in use, so the presets work for
our open hand and for MANO files of either side. Angles are plain numbers
chosen by eye, not measured data; the 23-DoF kinematics (``hand_ik.biomech``)
is the principled way to pose the hand.
"""

from __future__ import annotations

import math

import torch

from hand_ik.hand_model_data import MANO_JOINT_NAMES, MANO_TO_KEYPOINT

PRESET_NAMES: tuple[str, ...] = ("rest", "flat", "fist", "pinch", "point")

_LONG = ("index", "middle", "ring", "little")
_D = math.pi / 180.0

#: Flexion (deg) of MCP, PIP, DIP per long finger, and thumb (CMC, MCP, IP)
#: flexion with CMC opposition (deg) per preset.
_PRESETS: dict[str, dict] = {
    "fist": {
        "long": {f: (85, 100, 65) for f in _LONG},
        "thumb": (15, 30, 40),
        "thumb_opp": 20,
    },
    "point": {
        "long": {"index": (0, 0, 0), **{f: (85, 100, 65) for f in _LONG[1:]}},
        "thumb": (15, 30, 40),
        "thumb_opp": 20,
    },
    "pinch": {  # the thumb is then refined so its tip meets the index tip
        "long": {
            "index": (45, 45, 20),
            "middle": (30, 35, 15),
            "ring": (35, 40, 15),
            "little": (40, 40, 15),
        },
        "thumb": (15, 20, 20),
        "thumb_opp": 40,
    },
}


def _unit(v: torch.Tensor) -> torch.Tensor:
    # Zero vectors only arise from degenerate geometry; clamp to avoid NaN.
    return v / v.norm().clamp_min(1e-12)


def hand_directions(model, betas: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Palm normal, finger and radial directions of the template (model frame).

    Returns:
        dict with ``palm`` (out of the palm), ``finger`` (wrist -> middle MCP),
        ``radial`` (toward the thumb), unit (3,) tensors, and ``joints21``
        (21, 3) template keypoints.
    """
    out = model(betas=betas)
    kp = out.joints[0]
    wrist, index, middle, little = kp[0], kp[5], kp[9], kp[17]
    sign = 1.0 if model.side == "right" else -1.0
    palm = _unit(torch.linalg.cross(index - wrist, little - wrist)) * sign
    finger = _unit(middle - wrist)
    radial = index - little
    radial = _unit(radial - (radial @ finger) * finger)
    return {"palm": palm, "finger": finger, "radial": radial, "joints21": kp}


def preset_pose(model, name: str) -> torch.Tensor:
    """A named pose (45,) relative to the template, in the model's dtype/device.

    Args:
        model: a ``HandModel``.
        name: one of ``PRESET_NAMES``.
    """
    if name not in PRESET_NAMES:
        raise ValueError(f"unknown preset {name!r}; choose from {PRESET_NAMES}")
    if name == "rest":
        return model.hands_mean.clone()
    pose = torch.zeros(15, 3, dtype=model.v_template.dtype, device=model.v_template.device)
    if name == "flat":
        return pose.reshape(45)
    spec = _PRESETS[name]
    with torch.no_grad():
        dirs = hand_directions(model)
    kp, palm, radial = dirs["joints21"], dirs["palm"], dirs["radial"]

    def bone(joint_name: str) -> torch.Tensor:
        k = MANO_TO_KEYPOINT[MANO_JOINT_NAMES.index(joint_name)]
        return _unit(kp[k + 1] - kp[k])  # child keypoint (next joint or the tip)

    for finger in _LONG:
        for part, angle in zip(("mcp", "pip", "dip"), spec["long"][finger], strict=True):
            joint = f"{finger}_{part}"
            axis = _unit(torch.linalg.cross(bone(joint), palm))  # bends toward the palm
            pose[MANO_JOINT_NAMES.index(joint) - 1] = axis * angle * _D
    # Thumb: bend toward the palmar-ulnar diagonal; the CMC also rotates about
    # the palm's long axis to bring the thumb in front of the palm (opposition).
    bend = _unit(palm - radial)
    for part, angle in zip(("cmc", "mcp", "ip"), spec["thumb"], strict=True):
        joint = f"thumb_{part}"
        d = bone(joint)
        axis = _unit(torch.linalg.cross(d, _unit(bend - (bend @ d) * d)))
        rot = axis * angle * _D
        if part == "cmc":
            opp = roma_compose(
                _unit(dirs["finger"])
                * spec["thumb_opp"]
                * _D
                * (-1.0 if model.side == "right" else 1.0),
                rot,
            )
            rot = opp
        pose[MANO_JOINT_NAMES.index(joint) - 1] = rot
    pose = pose.reshape(45)
    # Refine the thumb so its tip lands where the pose needs it: on the index tip
    # (pinch, pads ~12 mm apart) or on the middle finger's middle phalanx (fist, point).
    if name == "pinch":
        return _place_thumb(model, pose, lambda kp: kp[8], gap=0.012)
    return _place_thumb(model, pose, lambda kp: 0.5 * (kp[10] + kp[11]) + 0.012 * palm, gap=0.0)


def _place_thumb(model, pose: torch.Tensor, target_fn, gap: float, steps: int = 60) -> torch.Tensor:
    """Adjust the three thumb joints so the thumb tip reaches ``target_fn(keypoints)``.

    Deterministic LBFGS with a fixed step budget and a small penalty on the
    change, so the thumb keeps its preset character.
    """
    thumb = slice(36, 45)  # MANO joints 13-15 (thumb) -> pose entries 36..44
    start = pose[thumb].detach().clone()
    delta = torch.zeros_like(start, requires_grad=True)
    opt = torch.optim.LBFGS([delta], lr=0.5, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        full = torch.cat([pose[:36], start + delta])
        kp = model(pose=full[None]).joints[0]
        dist = (kp[4] - target_fn(kp).detach()).norm()
        loss = (dist - gap) ** 2 + 1e-5 * (delta**2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return torch.cat([pose[:36], (start + delta).detach()])


def roma_compose(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Axis-angle of ``R(first) @ R(second)``."""
    import roma

    return roma.rotmat_to_rotvec(roma.rotvec_to_rotmat(first) @ roma.rotvec_to_rotmat(second))


# --- Presets in the 23 biomechanical DoF (robot fidelity benchmark and calibration) -------------

#: Named human poses for retargeting fidelity, as 23 bio DoF (``bio_preset``).
BIO_PRESET_NAMES: tuple[str, ...] = (
    "flat", "relaxed", "fist", "point", "ok",
    *(f"curl_{f}" for f in ("thumb", *_LONG)),
    *(f"pinch_{f}" for f in _LONG),
)  # fmt: skip

#: Flexion (deg) of MCP, PIP, DIP of a curled long finger (the ``fist`` preset's).
_CURL_LONG_DEG = (85.0, 100.0, 65.0)
#: Thumb of a fist or a curled thumb, deg: CMC flex, CMC rot, MCP flex, IP flex.
_CURL_THUMB_DEG = {"thumb_cmc_flex": 30.0, "thumb_cmc_rot": 30.0, "thumb_mcp_flex": 55.0,
                   "thumb_ip_flex": 70.0}  # fmt: skip
#: A relaxed hand (deg): long fingers MCP, PIP, DIP; thumb as in ``_CURL_THUMB_DEG``.
_RELAXED_LONG_DEG = (20.0, 30.0, 15.0)
_RELAXED_THUMB_DEG = {"thumb_cmc_flex": 10.0, "thumb_mcp_flex": 10.0, "thumb_ip_flex": 10.0}
#: Long finger flexion (deg) in a pinch with the thumb (the thumb is then placed on its tip).
_PINCH_LONG_DEG = {"index": (40.0, 45.0, 20.0), "middle": (55.0, 50.0, 25.0),
                   "ring": (50.0, 45.0, 20.0), "little": (55.0, 45.0, 20.0)}  # fmt: skip
#: Tip keypoint gap (m) of a pinch: the tip keypoints sit at the finger ends, the pads touch.
PINCH_TIP_GAP_M = 0.012


def _set_long(bio, finger: str, degrees: tuple[float, float, float]) -> None:
    from hand_ik.bio_dofs import BIO_DOF_INDEX

    for part, value in zip(("mcp_flex", "pip_flex", "dip_flex"), degrees, strict=True):
        bio[BIO_DOF_INDEX[f"{finger}_{part}"]] = value * _D


def _set_thumb(bio, degrees: dict[str, float]) -> None:
    from hand_ik.bio_dofs import BIO_DOF_INDEX

    for name, value in degrees.items():
        bio[BIO_DOF_INDEX[name]] = value * _D


def bio_preset(name: str, model=None):
    """A named human pose as (23,) bio DoF, radians (``hand_ik.bio_dofs`` order).

    ``flat``: all zero (the model's template: fingers straight). ``relaxed``: slight
    flexion everywhere. ``fist``: every long finger curled (MCP/PIP/DIP 85/100/65 deg),
    the thumb flexed over them. ``curl_<finger>``: that finger curled as in the fist,
    the others flat. ``pinch_<finger>``: that finger half flexed, the others relaxed,
    the thumb's 7 DoF placed so its tip keypoint is ``PINCH_TIP_GAP_M`` from the
    finger's tip keypoint (deterministic LBFGS within the DoF limits). ``point``: the
    index flat, the others curled, the thumb as in the fist. ``ok``: the index pinch
    with the other three fingers flat. Angles are chosen, not measured.

    Args:
        name: one of ``BIO_PRESET_NAMES``.
        model: the hand model the pinch thumb is placed on (default: the open model).

    Returns:
        (23,) float64 numpy array.
    """
    import numpy as np

    from hand_ik.bio_dofs import NUM_BIO_DOFS

    if name not in BIO_PRESET_NAMES:
        raise ValueError(f"unknown bio preset {name!r}; choose from {BIO_PRESET_NAMES}")
    bio = np.zeros(NUM_BIO_DOFS)
    if name == "flat":
        return bio
    if name == "relaxed":
        for finger in _LONG:
            _set_long(bio, finger, _RELAXED_LONG_DEG)
        _set_thumb(bio, _RELAXED_THUMB_DEG)
        return bio
    if name in ("fist", "point"):
        for finger in _LONG if name == "fist" else _LONG[1:]:
            _set_long(bio, finger, _CURL_LONG_DEG)
        _set_thumb(bio, _CURL_THUMB_DEG)
        return bio
    kind, _, finger = name.partition("_")
    if kind == "curl":
        if finger == "thumb":
            _set_thumb(bio, _CURL_THUMB_DEG)
        else:
            _set_long(bio, finger, _CURL_LONG_DEG)
        return bio
    target = "index" if name == "ok" else finger
    if name != "ok":
        for other in _LONG:
            _set_long(bio, other, _RELAXED_LONG_DEG)
    _set_long(bio, target, _PINCH_LONG_DEG[target])
    return _place_thumb_bio(bio, target, model)


def _place_thumb_bio(bio, finger: str, model=None, steps: int = 80):
    """Move the 7 thumb DoF so the thumb tip is ``PINCH_TIP_GAP_M`` from ``finger``'s tip.

    Deterministic LBFGS from an opposed thumb, limits as a quadratic penalty
    (then clipped), a small pull toward the start so the solution is unique.
    """
    import numpy as np

    from hand_ik.bio_dofs import BIO_DOF_INDEX, BIO_LOWER, BIO_UPPER
    from hand_ik.biomech import bio_kinematics_for, default_hand_model
    from hand_ik.ik.keypoint_layer import KeypointLayer

    model = model if model is not None else default_hand_model()
    kin, layer = bio_kinematics_for(model), KeypointLayer(model)
    dtype = layer.joint_template.dtype
    thumb = [i for i, n in enumerate(BIO_DOF_INDEX) if n.startswith("thumb_")]
    base = torch.as_tensor(bio, dtype=dtype)
    start = base.clone()
    for dof, deg in (("thumb_cmc_rot", 40.0), ("thumb_cmc_flex", 20.0), ("thumb_mcp_flex", 20.0)):
        start[BIO_DOF_INDEX[dof]] = deg * _D
    lo = torch.as_tensor(BIO_LOWER, dtype=dtype)[thumb]
    hi = torch.as_tensor(BIO_UPPER, dtype=dtype)[thumb]
    tip = {"index": 8, "middle": 12, "ring": 16, "little": 20}[finger]
    delta = torch.zeros(len(thumb), dtype=dtype, requires_grad=True)
    opt = torch.optim.LBFGS([delta], lr=0.5, max_iter=steps, line_search_fn="strong_wolfe")
    eye = torch.eye(3, dtype=dtype)[None, None]
    betas = torch.zeros(1, model.num_betas, dtype=dtype)

    def pose(d: torch.Tensor) -> torch.Tensor:
        full = start.clone()
        full[thumb] = start[thumb] + d
        return full

    def closure():
        opt.zero_grad()
        b = pose(delta)
        kp = layer(betas, torch.cat([eye, kin.bio_to_rotmats(b[None])], dim=1))[0]
        dist = (kp[4] - kp[tip]).norm()
        t = b[thumb]
        limits = (torch.relu(lo - t) ** 2 + torch.relu(t - hi) ** 2).sum()
        loss = 1e4 * (dist - PINCH_TIP_GAP_M) ** 2 + 10.0 * limits + 1e-4 * (delta**2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    out = pose(delta.detach()).numpy().astype(np.float64)
    out[thumb] = np.clip(out[thumb], lo.numpy(), hi.numpy())
    return out
