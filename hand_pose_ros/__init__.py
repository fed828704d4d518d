"""hand_pose_ros: drive a robot hand with your own hand in front of a camera.

The generated interfaces (``hand_pose_ros.msg``) are installed by colcon into
the Python prefix; ``extend_path`` lets the source tree and that install share
one package, so running from a checkout still finds the messages.
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

__version__ = "0.1.0"
