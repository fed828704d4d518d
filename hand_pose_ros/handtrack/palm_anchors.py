"""SSD anchors of the real-trained palm detector (192 x 192 input, 2016 anchors).

Feature maps of stride 8 (24 x 24, 2 anchors per cell) and stride 16 (12 x 12, three
layers of 2 anchors grouped per cell: 6). Anchors have a fixed unit size, so only their
centres matter: the network regresses boxes relative to them, in input pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AnchorSpec:
    """SSD anchor layout: one entry of ``strides`` per detector layer."""

    input_size: int = 192
    """Square network input side, pixels."""
    strides: tuple[int, ...] = (8, 16, 16, 16)
    """Stride of each layer's feature map; equal consecutive strides share one grid."""
    anchors_per_layer: int = 2
    """Anchors each layer places per grid cell (one aspect ratio + the interpolated one)."""
    offset: float = 0.5
    """Anchor centre within its cell, in cells."""

    def __post_init__(self) -> None:
        if self.input_size <= 0 or not self.strides or min(self.strides) <= 0:
            raise ValueError("AnchorSpec: input_size and strides must be positive")
        if self.anchors_per_layer <= 0:
            raise ValueError("AnchorSpec.anchors_per_layer must be positive")


def ssd_anchor_centres(spec: AnchorSpec = AnchorSpec()) -> np.ndarray:
    """(N, 2) anchor centres (x, y), normalised to [0, 1] of the input, in the network's
    output order: per grid (consecutive layers of equal stride), rows, columns, anchors."""
    centres = []
    i = 0
    while i < len(spec.strides):
        stride = spec.strides[i]
        layers = 1
        while i + layers < len(spec.strides) and spec.strides[i + layers] == stride:
            layers += 1
        cells = int(np.ceil(spec.input_size / stride))
        per_cell = layers * spec.anchors_per_layer
        ys, xs = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
        grid = np.stack([(xs + spec.offset) / cells, (ys + spec.offset) / cells], -1)
        centres.append(np.repeat(grid.reshape(-1, 2), per_cell, axis=0))
        i += layers
    return np.concatenate(centres).astype(np.float64)
