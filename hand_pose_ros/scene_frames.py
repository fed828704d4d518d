"""The tf frames that place the camera and the robot in the world (one place; no ROS).

The launch file's static_transform_publishers and the in-process robot state node
(``hand-teleop run``) publish these same two static transforms; RViz's and Foxglove's
fixed frame is ``WORLD_FRAME``.
"""

from __future__ import annotations

from dataclasses import dataclass

WORLD_FRAME = "world"
"""Fixed frame of the scene (RViz's Fixed Frame)."""
CAMERA_FRAME = "camera_optical_frame"
"""Frame of the camera's images and keypoints (x right, y down, z forward)."""


@dataclass(frozen=True)
class StaticPlacement:
    """A child frame placed in a parent frame: translation in metres, no rotation."""

    parent: str
    child: str
    x: float = 0.0
    y: float = 0.0
    z: float = 0.0

    def static_transform_arguments(self) -> list[str]:
        """Arguments of tf2_ros' static_transform_publisher for this placement."""
        args = []
        for axis, value in (("--x", self.x), ("--y", self.y), ("--z", self.z)):
            if value:
                args += [axis, repr(value)]
        return [*args, "--frame-id", self.parent, "--child-frame-id", self.child]


CAMERA_IN_WORLD = StaticPlacement(WORLD_FRAME, CAMERA_FRAME)
"""world -> camera: identity (the world frame is the camera's optical frame)."""
#: The robot stands 25 cm to the right of the camera's view of the hand, 45 cm deep.
ROBOT_BASE_XYZ = (0.25, 0.0, 0.45)
#: Bimanual teleop: the left robot stands 25 cm to the left (the right one as above).
LEFT_ROBOT_BASE_XYZ = (-0.25, 0.0, 0.45)
#: Bimanual teleop: prefix of the left robot's link frames (robot_state_publisher's
#: ``frame_prefix``), so two robots sharing link names (e.g. two copies of one URDF) do
#: not collide in TF; its model is on ``/left/robot_description``.
LEFT_ROBOT_FRAME_PREFIX = "left/"


def robot_base_in_world(root_link: str, side: str | None = None) -> StaticPlacement:
    """world -> the robot URDF's root link; ``side`` "left": the left robot of two (at
    :data:`LEFT_ROBOT_BASE_XYZ`, its root frame prefixed)."""
    if side == "left":
        x, y, z = LEFT_ROBOT_BASE_XYZ
        return StaticPlacement(WORLD_FRAME, LEFT_ROBOT_FRAME_PREFIX + root_link, x, y, z)
    x, y, z = ROBOT_BASE_XYZ
    return StaticPlacement(WORLD_FRAME, root_link, x, y, z)
