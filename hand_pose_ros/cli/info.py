"""``hand-teleop info``: what this install can run (backends, ROS interfaces, assets)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform

from hand_pose_ros import __version__


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "info", help="show versions, available backends and ROS 2 interfaces (JSON)"
    )
    parser.set_defaults(func=run)


def _version(module: str) -> str | None:
    if importlib.util.find_spec(module) is None:
        return None
    mod = importlib.import_module(module)
    return str(getattr(mod, "__version__", "installed"))


def collect_info() -> dict:
    """Versions of the optional and required components; None where absent."""
    info: dict = {
        "hand_pose_ros": __version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    for module in ("numpy", "torch", "onnxruntime", "tensorrt", "rclpy", "pinocchio", "cv2"):
        try:
            info[module] = _version(module)
        except ImportError as exc:  # present but broken, e.g. a mismatched wheel
            info[module] = f"broken: {exc}"
    try:
        from hand_pose_ros.msg import HandKeypoints, HandState  # noqa: F401

        info["ros_interfaces"] = True
    except ImportError:
        info["ros_interfaces"] = False
    if info.get("torch") and not str(info["torch"]).startswith("broken"):
        import torch

        info["cuda"] = torch.cuda.is_available()
    return info


def run(args: argparse.Namespace) -> int:
    print(json.dumps(collect_info(), indent=2))
    return 0
