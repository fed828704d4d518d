"""pip install for the pure-Python parts (hand_ik, hand_pose_ros, the CLI).

ROS 2 users build with colcon (CMakeLists.txt + package.xml); this file is for
pip and editable installs (scripts/setup.sh). Runtime requirements are pinned in
requirements/*.txt, which the setup script installs.
"""

from setuptools import find_packages, setup

setup(
    name="hand_pose_ros",
    version="0.1.0",
    description="Drive a robot hand with your own hand in front of a camera (ROS 2).",
    license="Apache-2.0",
    python_requires="==3.11.*",
    packages=find_packages(include=["hand_pose_ros", "hand_pose_ros.*", "hand_ik", "hand_ik.*"]),
    include_package_data=True,
    package_data={"hand_ik": ["assets/*.npz", "assets/*.json", "assets/conventions/*",
                             "weights/*"],
                  "hand_pose_ros": ["weights/*"]},
    entry_points={
        "console_scripts": [
            "hand-teleop = hand_pose_ros.cli.main:main",
        ],
    },
)
