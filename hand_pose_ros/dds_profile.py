"""The package's Fast DDS profile (``config/fastdds.xml``): large images over shared memory.

Call :func:`use_package_dds_profile` before ``rclpy.init``. It only sets the profile
environment variable when the user has not chosen a profile and the middleware is Fast
DDS (the default of ROS 2 Jazzy); otherwise it changes nothing.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from hand_pose_ros.params import DEFAULT_PARAMS

log = logging.getLogger(__name__)

#: Environment variables Fast DDS reads its XML profile from (2.x name first).
PROFILE_ENV = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")


def package_dds_profile() -> Path:
    """``config/fastdds.xml`` of this package (source tree or installed share folder)."""
    return Path(DEFAULT_PARAMS).with_name("fastdds.xml")


def use_package_dds_profile(environ: dict | None = None) -> Path | None:
    """Point Fast DDS at :func:`package_dds_profile` unless a profile or another
    middleware is already chosen. Returns the profile used, or None."""
    env = os.environ if environ is None else environ
    if any(env.get(k) for k in PROFILE_ENV):
        return None
    if env.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp") not in ("rmw_fastrtps_cpp",
                                                                 "rmw_fastrtps_dynamic_cpp"):
        return None
    profile = package_dds_profile()
    if not profile.is_file():
        log.warning("Fast DDS profile %s not found: large images may be dropped", profile)
        return None
    env["FASTRTPS_DEFAULT_PROFILES_FILE"] = str(profile)
    return profile
