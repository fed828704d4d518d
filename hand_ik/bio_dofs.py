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

import math
from dataclasses import dataclass

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


# --- Joint limits --------------------------------------------------------------------------------
# Zero of every DoF is the hand model's flat template (fingers straight, their natural fan, the
# thumb in its rest spread). Ranges in degrees, from the range-of-motion literature:
#   [AAOS]   American Academy of Orthopaedic Surgeons, "Joint Motion: Method of Measuring and
#            Recording", 1965: MCP flexion 0-90 / hyperextension 45, PIP 0-100, DIP 0-90,
#            thumb MCP 0-50, thumb IP 0-80 (hyperextension ~20), thumb palmar/radial abduction 70.
#   [Hume]   Hume et al., "Functional range of motion of the joints of the hand",
#            J Hand Surg 15A(2):240-243, 1990: active flexion MCP 100, PIP 105, DIP 85,
#            thumb MCP 56, thumb IP 73.
#   [Cobos]  Cobos et al., "Efficient human hand kinematics for manipulation tasks",
#            IROS 2008, Table I: MCP abduction/adduction about +-20 for the long fingers,
#            larger for the little finger; thumb CMC ranges.
# Thumb CMC/MCP ranges are about the model's rest thumb (already spread and ~45 deg palmward),
# so they are shifted toward adduction relative to the anatomical neutral.


@dataclass(frozen=True)
class BioDof:
    """One biomechanical DoF: its name, the model joint it drives, its kind and limits (rad)."""

    name: str
    kind: str  # "flex", "abd" or "rot"
    lower: float
    upper: float
    source: str


def _deg(lo: float, hi: float) -> tuple[float, float]:
    return math.radians(lo), math.radians(hi)


_LIMITS_DEG: dict[str, tuple[float, float, str]] = {
    "index_mcp_abd": (-15.0, 25.0, "Cobos"),
    "middle_mcp_abd": (-20.0, 20.0, "Cobos"),
    "ring_mcp_abd": (-20.0, 15.0, "Cobos"),
    "little_mcp_abd": (-30.0, 15.0, "Cobos"),
    "thumb_cmc_abd": (-40.0, 40.0, "AAOS, Cobos"),
    "thumb_cmc_flex": (-30.0, 60.0, "Cobos"),
    "thumb_cmc_rot": (-30.0, 60.0, "Cobos"),
    "thumb_mcp_abd": (-15.0, 15.0, "Cobos"),
    "thumb_mcp_flex": (-15.0, 70.0, "AAOS, Hume"),
    "thumb_mcp_rot": (-20.0, 20.0, "Cobos"),
    "thumb_ip_flex": (-20.0, 90.0, "AAOS, Hume"),
}
for _finger in LONG_FINGERS:
    _LIMITS_DEG[f"{_finger}_mcp_flex"] = (-30.0, 95.0, "AAOS, Hume")
    _LIMITS_DEG[f"{_finger}_pip_flex"] = (-5.0, 110.0, "AAOS, Hume")
    _LIMITS_DEG[f"{_finger}_dip_flex"] = (-15.0, 90.0, "AAOS, Hume")

#: The table: one row per DoF, in BIO_DOF_NAMES order.
BIO_DOF_TABLE: tuple[BioDof, ...] = tuple(
    BioDof(name, name.rsplit("_", 1)[1], *_deg(*_LIMITS_DEG[name][:2]), _LIMITS_DEG[name][2])
    for name in BIO_DOF_NAMES
)

#: Lower and upper limits (rad), BIO_DOF_NAMES order.
BIO_LOWER: tuple[float, ...] = tuple(d.lower for d in BIO_DOF_TABLE)
BIO_UPPER: tuple[float, ...] = tuple(d.upper for d in BIO_DOF_TABLE)
