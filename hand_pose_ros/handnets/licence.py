"""Apache-2.0 duties for converted networks: the licence text and a change notice beside
every file we write (Apache-2.0 sections 4(a)-(c))."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from hand_pose_ros.handnets.registry import INSTALL_HINT, WHEEL, WHEEL_VERSION, list_networks

CHANGE_NOTICE = f"""\
Hand networks converted by hand_pose_ros
=========================================

The hand network files in this folder (ONNX, TensorRT engines; names starting with
{", ".join(list_networks())}) are derived works of the hand landmark and
palm detection networks distributed by Google LLC in the `{WHEEL}` {WHEEL_VERSION}
Python wheel under the Apache License, Version 2.0 (full text in the file LICENSE
beside this one).

Changes made by hand_pose_ros (Apache-2.0 section 4(b)):
- converted from TensorFlow Lite to PyTorch modules and ONNX (and, where present,
  TensorRT engines built from that ONNX);
- weights cast from float16 to float32 (TensorRT engines: back to float16);
- input layout changed from NHWC to NCHW; outputs renamed and reshaped.
The network architectures and trained weights are otherwise unchanged.

hand_pose_ros and these files are not affiliated with or endorsed by Google; no
trademark rights are granted.
"""


def wheel_licence_text() -> str:
    """The Apache-2.0 text shipped in the wheel's ``dist-info/LICENSE``.

    Raises:
        ImportError: the wheel, or its LICENSE, is not installed.
    """
    try:
        text = importlib.metadata.distribution(WHEEL).read_text("LICENSE")
    except importlib.metadata.PackageNotFoundError as exc:
        raise ImportError(f"the {WHEEL} wheel is not installed: {INSTALL_HINT}") from exc
    if not text:
        raise ImportError(
            f"the {WHEEL} wheel has no dist-info/LICENSE: reinstall it ({INSTALL_HINT})"
        )
    return text


def write_notice(folder: str | Path) -> list[Path]:
    """Write ``LICENSE`` (the wheel's Apache-2.0 text) and ``NOTICE`` (source and changes)
    into ``folder``; returns both paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    licence, notice = folder / "LICENSE", folder / "NOTICE"
    licence.write_text(wheel_licence_text())
    notice.write_text(CHANGE_NOTICE)
    return [licence, notice]
