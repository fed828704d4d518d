"""The 23 biomechanical degrees of freedom (seed 002 after MobileHand / Lim et al. 2020).

This module is the one source of truth for their names and order. Axes are
derived from the rest-pose geometry of the hand model in use
(``hand_ik.biomech``); joint limits with sources live in ``BIO_DOF_TABLE``
(added with the kinematics).

Sign conventions (right hand, canonical form):
- ``*_flex``: positive bends the finger toward the palm (flexion).
- ``*_abd``: positive moves the finger toward the thumb side (radial).
- ``thumb_*_rot``: positive pronates the thumb about its own long axis
  (toward opposition).
"""

from __future__ import annotations

#: Fingers with 4 DoF each (MCP abduction, MCP flexion, PIP flexion, DIP flexion).
LONG_FINGERS: tuple[str, ...] = ("index", "middle", "ring", "little")

BIO_DOF_NAMES: tuple[str, ...] = (
    *(f"{f}_{j}" for f in LONG_FINGERS for j in ("mcp_abd", "mcp_flex", "pip_flex", "dip_flex")),
    "thumb_cmc_abd", "thumb_cmc_flex", "thumb_cmc_rot",
    "thumb_mcp_abd", "thumb_mcp_flex", "thumb_mcp_rot",
    "thumb_ip_flex",
)  # fmt: skip

NUM_BIO_DOFS = len(BIO_DOF_NAMES)
assert NUM_BIO_DOFS == 23

#: Index of each DoF name in the 23-vector.
BIO_DOF_INDEX: dict[str, int] = {name: i for i, name in enumerate(BIO_DOF_NAMES)}
