"""File inputs and outputs.

``keypoint_sequences`` is ROS-free; ``mcap_recorder`` serialises rclpy messages (it is
used by the CLI runner only) and is deliberately not re-exported here, so importing this
package never pulls in rclpy.
"""
