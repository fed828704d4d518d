"""`hand-teleop`: our refusals of bad input are one line; bugs and -v show the traceback."""

from __future__ import annotations

import numpy as np
import pytest

from hand_pose_ros.cli import run as cli_run
from hand_pose_ros.cli.main import main
from hand_pose_ros.graph_plan import GraphConfigError


def test_a_bad_value_is_one_line_naming_it(capsys):
    assert main(["run", "--source", "camera"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hand-teleop run: error: source 'camera': expected demo")
    assert "\n" not in err and "Traceback" not in err


def test_verbose_shows_the_traceback():
    with pytest.raises(GraphConfigError, match="source 'camera'"):
        main(["-v", "run", "--source", "camera"])


def test_an_internal_error_is_not_dressed_as_a_user_error(monkeypatch):
    def broken_plan(options):
        return np.zeros(3).reshape(2)  # a ValueError raised inside numpy: our bug

    monkeypatch.setattr(cli_run, "plan_graph", broken_plan)
    with pytest.raises(ValueError, match="reshape"):
        main(["run"])
