"""Detector and handedness research: training data, label assignment, losses, trainers,
the probe fit and the detection metrics (the networks and their runtime are
:mod:`hand_pose_ros.detection`)."""
