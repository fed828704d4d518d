"""Mesh estimator research: training data, losses, the trainer and the accuracy metrics
(the networks and their runtime are :mod:`hand_pose_ros.estimation`)."""
