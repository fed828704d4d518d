"""Pipeline stages (ROS-free) wired by the ROS nodes and the in-process runner."""
