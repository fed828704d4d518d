"""Colour tables shared by the 2D overlays and the robot renderer (RGB, uint8 values).

The finger order is ``hand_ik.keypoints.FINGER_NAMES``: thumb, index, middle, ring, little.
The hues match the BGR table in ``mesh_render.py`` so every view of the product colours a
finger the same way.
"""

from __future__ import annotations

#: RGB colour per finger, thumb to little.
FINGER_COLOURS_RGB: tuple[tuple[int, int, int], ...] = (
    (255, 80, 0),  # thumb: orange
    (255, 200, 0),  # index: yellow
    (40, 200, 40),  # middle: green
    (0, 160, 255),  # ring: blue
    (180, 0, 220),  # little: purple
)

#: Wrist / palm colour (RGB).
PALM_RGB: tuple[int, int, int] = (200, 200, 205)

#: Colours for robot fingertips whose finger cannot be named (RGB).
EXTRA_RGB: tuple[tuple[int, int, int], ...] = ((255, 120, 160), (120, 230, 220), (230, 230, 120))

#: Robot renderer background (RGB).
BACKGROUND_RGB: tuple[int, int, int] = (28, 30, 36)

#: Label text and its backing box (RGB).
LABEL_TEXT_RGB: tuple[int, int, int] = (255, 255, 255)
LABEL_BOX_RGB: tuple[int, int, int] = (0, 0, 0)
