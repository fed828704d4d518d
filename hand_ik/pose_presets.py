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
