"""File inputs and outputs that do not depend on ROS."""
