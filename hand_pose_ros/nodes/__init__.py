"""ROS 2 nodes: thin adapters that convert messages and call the pipeline classes.

This is the only package (with the CLI runner) that imports rclpy.
"""
