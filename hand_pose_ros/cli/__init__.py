"""The ``hand-teleop`` command line."""
