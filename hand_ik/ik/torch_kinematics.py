"""Model points and their Jacobians by torch autodiff: the post-optimization's general path.

:class:`FastKeypointKinematics` covers keypoints of models without pose correctives in
closed form; this class covers the rest (a model with pose correctives, a fit to the
whole mesh) with forward-mode autodiff of the torch model, behind the same interface.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.func import jacfwd

from hand_ik.biomech import BioKinematics
from hand_ik.ik.keypoint_layer import KeypointLayer


def _skew(v: torch.Tensor) -> torch.Tensor:
    """(3,) -> (3, 3) cross-product matrix (differentiable)."""
    zero = v.new_zeros(())
    return torch.stack([torch.stack([zero, -v[2], v[1]]),
                        torch.stack([v[2], zero, -v[0]]),
                        torch.stack([-v[1], v[0], zero])])  # fmt: skip


class TorchPointKinematics:
    """Keypoints (and optionally all mesh vertices) of one posed hand, with Jacobians.

    Args:
        model: the ``HandModel``.
        kinematics: its ``BioKinematics``.
        with_vertices: also return the V mesh vertices after the 21 keypoints.
    """

    def __init__(self, model, kinematics: BioKinematics, with_vertices: bool) -> None:
        self.model = model
        self.kinematics = kinematics
        self.layer = KeypointLayer(model)
        self.with_vertices = with_vertices
        self.dtype = model.v_template.dtype

    def _points(self, rotation: torch.Tensor, bio: torch.Tensor, betas: torch.Tensor,
                delta: torch.Tensor, transl: torch.Tensor) -> torch.Tensor:  # fmt: skip
        # (I + skew(delta)) R is the left perturbation exp(skew(delta)) R to first order:
        # all a Jacobian at delta = 0 needs (and exactly R there).
        root = rotation + _skew(delta) @ rotation
        joints = self.kinematics.bio_to_rotmats(bio[None])
        if self.with_vertices:
            out = self.model.forward_rotmat(betas[None], joints, root[None], transl[None])
            points = torch.cat([out.joints[0], out.vertices[0]])
        else:
            points = self.layer(betas[None], torch.cat([root[None, None], joints], dim=1),
                                transl[None])[0]  # fmt: skip
        return points.reshape(-1)

    def forward(self, betas: np.ndarray, bio: np.ndarray, rotation: np.ndarray,
                transl: np.ndarray, jacobians: bool = True):  # fmt: skip
        """Points (M, 3) and, optionally, d points / d (bio, rot, transl, betas).

        Args:
            betas: (K,); bio: (23,) radians; rotation: (3, 3) global rotation about the
                wrist joint; transl: (3,) metres.

        Returns:
            points (21 keypoints, then the vertices if ``with_vertices``) and, with
            ``jacobians``, a dict of (3M, n) float64 arrays: ``bio`` (n=23), ``rot`` (3,
            left perturbation), ``transl`` (3), ``betas`` (K).
        """
        rot = torch.as_tensor(rotation, dtype=self.dtype)
        args = tuple(torch.as_tensor(a, dtype=self.dtype)
                     for a in (bio, betas, np.zeros(3), transl))  # fmt: skip
        if not jacobians:
            with torch.no_grad():
                points = self._points(rot, *args)
            return points.reshape(-1, 3).double().numpy(), None

        def value_twice(*a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            points = self._points(rot, *a)
            return points, points

        jac, points = jacfwd(value_twice, argnums=(0, 1, 2, 3), has_aux=True)(*args)
        names = ("bio", "betas", "rot", "transl")
        return points.reshape(-1, 3).double().numpy(), {
            name: j.double().numpy() for name, j in zip(names, jac, strict=True)
        }
