"""Joint mapping: robot free joints as an affine function of the 23 biomechanical DoF."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from hand_ik.bio_dofs import BIO_DOF_INDEX, NUM_BIO_DOFS


class JointMap:
    """``q_free = clip(weights @ bio + offset, lower, upper)``.

    Coupled robot joints are rows with several DoF (e.g. a Shadow J1+J2 pair
    from one PIP+DIP flexion); mimic joints are not mapped here, they follow
    their parent (``RobotModel.full_q``).

    Args:
        joint_map: free joint name -> {bio DoF name: coefficient, ``offset``: value}.
        free_names: the robot's free joints (order of the output).
        lower, upper: (n_free,) limits.
    """

    def __init__(
        self,
        joint_map: Mapping[str, Mapping[str, float]],
        free_names: Sequence[str],
        lower: np.ndarray,
        upper: np.ndarray,
    ):
        index = {n: i for i, n in enumerate(free_names)}
        unknown = sorted(set(joint_map) - set(index))
        if unknown:
            raise ValueError(
                f"joint_map names joints that are not free robot joints {unknown} "
                f"(mimic and locked joints follow automatically); free joints: {list(free_names)}"
            )
        self.weights = np.zeros((len(free_names), NUM_BIO_DOFS))
        self.offset = np.zeros(len(free_names))
        for joint, terms in joint_map.items():
            for dof, value in terms.items():
                if dof == "offset":
                    self.offset[index[joint]] = value
                else:
                    self.weights[index[joint], BIO_DOF_INDEX[dof]] = value
        self.lower, self.upper = np.asarray(lower, float), np.asarray(upper, float)

    def __call__(self, bio: np.ndarray) -> np.ndarray:
        """(23,) bio DoF in radians -> (n_free,) in-limit robot joint positions.

        Non-finite DoF count as 0 (the hand model's rest pose).
        """
        bio = np.asarray(bio, dtype=float)
        if bio.shape != (NUM_BIO_DOFS,):
            raise ValueError(f"bio must have shape ({NUM_BIO_DOFS},), got {bio.shape}")
        bio = np.where(np.isfinite(bio), bio, 0.0)
        return np.clip(self.weights @ bio + self.offset, self.lower, self.upper)
