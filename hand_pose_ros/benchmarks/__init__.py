"""Every benchmark's logic, one module each (``hand-teleop bench NAME``, registered in
:mod:`hand_pose_ros.cli.bench`): each defines ``add_arguments(parser)`` and ``run(args)``
returning ``{"bench": NAME, "machine": machine_info(), "rows": [...]}``, with heavy imports
inside ``run`` so ``hand-teleop --help`` stays instant. :mod:`.handnets` is the
``python -m`` measurement of the converted networks against TFLite."""
