"""The graph plan: one source of truth for `ros2 launch` and `hand-teleop run`."""

from __future__ import annotations

import argparse
import importlib.util

import pytest
from conftest import REPO_ROOT

from hand_pose_ros.cli import run as cli_run
from hand_pose_ros.graph_plan import (
    CLI_ONLY,
    GRAPH_OPTIONS,
    LAUNCH_ONLY,
    GraphConfigError,
    parse_option,
    plan_graph,
)
from hand_pose_ros.params import load_node_parameters


def _launch_module():
    spec = importlib.util.spec_from_file_location("teleop_launch",
                                                  REPO_ROOT / "launch" / "teleop.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cli_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    cli_run.add_parser(parser.add_subparsers())
    return parser


def _cli_flags() -> set[str]:
    sub = next(a for a in _cli_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {a.dest for a in sub.choices["run"]._actions if a.dest != "help"}


def test_every_option_exists_in_both_front_ends_or_is_one_sided_on_purpose():
    launch_arguments = set(_launch_module().ARGUMENTS)
    cli_flags = _cli_flags()
    assert launch_arguments == set(GRAPH_OPTIONS) | set(LAUNCH_ONLY)
    assert cli_flags == set(GRAPH_OPTIONS) | set(CLI_ONLY)
    assert not set(LAUNCH_ONLY) & set(CLI_ONLY)


def test_launch_arguments_and_cli_flags_share_defaults_and_help():
    arguments = _launch_module().ARGUMENTS
    for name, option in GRAPH_OPTIONS.items():
        assert arguments[name] == (option.default, option.help)
        assert option.help.endswith("."), name


@pytest.mark.parametrize("argv, launch_args", [
    ([], {}),
    (["--estimator", "truth", "--frames", "5"], {"estimator": "truth", "frames": "5"}),
    (["--source", "video:/v.mp4", "--robot", "allegro", "--urdf", "/a.urdf", "--backend",
      "torch", "--hand-side", "left", "--rate", "15"],
     {"source": "video:/v.mp4", "robot": "allegro", "urdf": "/a.urdf", "backend": "torch",
      "hand_side": "left", "rate": "15"}),
    (["--source", "keypoints:/k.npz", "--no-post-opt", "--operator-profile", "/op.yaml"],
     {"source": "keypoints:/k.npz", "post_opt": "false", "operator_profile": "/op.yaml"}),
    (["--source", "ros", "--post-opt"], {"source": "ros", "post_opt": "true"}),
    (["--robot", "allegro", "--robot-left", "allegro_left", "--urdf-left", "/l.urdf"],
     {"robot": "allegro", "robot_left": "allegro_left", "urdf_left": "/l.urdf"}),
])  # fmt: skip
def test_cli_flags_and_launch_arguments_give_the_same_graph(argv, launch_args):
    args = _cli_parser().parse_args(["run", *argv])
    from_cli = plan_graph({name: getattr(args, name) for name in GRAPH_OPTIONS})
    # ros2 launch passes every argument as text, empty where not given.
    from_launch = plan_graph({name: launch_args.get(name, option.default)
                              for name, option in GRAPH_OPTIONS.items()})  # fmt: skip
    assert from_cli == from_launch


def test_plans_start_the_right_nodes():
    assert plan_graph({}).node_names == ("demo_source", "estimator_node", "ik_node",
                                         "retarget_node", "wrist_pose_node")  # fmt: skip
    assert plan_graph({"estimator": "truth"}).node_names == ("demo_source", "ik_node",
                                                             "retarget_node",
                                                             "wrist_pose_node")  # fmt: skip
    assert plan_graph({"source": "webcam:0"}).node_names[0] == "camera_source"
    assert plan_graph({"source": "ros"}).node_names == ("estimator_node", "ik_node",
                                                        "retarget_node",
                                                        "wrist_pose_node")  # fmt: skip
    keypoints = plan_graph({"source": "keypoints:/k.npz", "rate": 20})
    assert keypoints.node_names == ("keypoints_player", "ik_node", "retarget_node",
                                    "wrist_pose_node")  # fmt: skip
    assert keypoints.node("keypoints_player").overrides == {"file": "/k.npz", "rate_hz": 20.0}
    assert keypoints.node("ik_node").overrides == {"plausibility.check_depth": False,
                                                   "keypoint_convention": "ours"}
    assert plan_graph({}).node("ik_node").overrides == {"keypoint_convention": "mediapipe"}
    assert plan_graph({"estimator": "ours"}).parameters("ik_node")["keypoint_convention"] == "ours"


def test_overrides_go_over_the_params_file_and_empty_options_keep_it():
    file_values = load_node_parameters()
    plan = plan_graph({"robot": "leap"})
    assert plan.parameters("retarget_node")["robot"] == "leap"
    assert plan.parameters("ik_node") == {**file_values["ik_node"],
                                          "keypoint_convention": "mediapipe"}
    default = plan_graph({"robot": ""})
    assert default.parameters("retarget_node")["robot"] == file_values["retarget_node"]["robot"]
    assert default.node("demo_source").overrides == {"publish_keypoints": False}


@pytest.mark.parametrize("options, message", [
    ({"source": "video:/v.mp4", "estimator": "truth"}, "estimator truth needs source demo"),
    ({"source": "camera"}, "expected demo, video:PATH"),
    ({"source": "video"}, "needs an argument"),
    ({"estimator": "best"}, "estimator: expected one of"),
    ({"post_opt": "yes"}, "post_opt: expected true or false"),
    ({"rate": "0"}, "rate: must be > 0"),
    ({"frames": "-1"}, "frames: must be >= 0"),
    ({"colour": "red"}, "unknown graph options: colour"),
    ({"robot_left": "leap_left", "hand_side": "right"}, "robot_left .* needs hand_side auto"),
    ({"urdf_left": "/l.urdf"}, "urdf_left .* needs robot_left"),
])  # fmt: skip
def test_bad_options_are_refused_with_the_option_named(options, message):
    with pytest.raises(GraphConfigError, match=message):
        plan_graph(options)


def test_a_missing_params_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.yaml"):
        plan_graph({"params": str(tmp_path / "nope.yaml")})


def test_option_text_parses_to_typed_values():
    assert parse_option("post_opt", "False") is False
    assert parse_option("rate", "12.5") == 12.5
    assert parse_option("frames", "7") == 7
    assert parse_option("robot", "  ") is None


def test_bimanual_plan_adds_a_left_robot_node_and_splits_the_hands_by_side():
    plan = plan_graph({"robot": "allegro", "urdf": "/r.urdf", "robot_left": "allegro_left",
                       "urdf_left": "/l.urdf"})  # fmt: skip
    assert plan.bimanual
    assert plan.node_names == ("demo_source", "estimator_node", "ik_node", "retarget_node",
                               "retarget_left_node", "wrist_pose_node")  # fmt: skip
    assert plan.robot_nodes == {"right": "retarget_node", "left": "retarget_left_node"}
    left = plan.node("retarget_left_node")
    assert left.executable == "retarget_node" and left.section == "retarget_node"
    assert plan.node("demo_source").overrides["hands"] == 2
    assert plan.node("ik_node").overrides == {"max_hands": 2, "keypoint_convention": "mediapipe"}
    right, left_params = plan.parameters("retarget_node"), plan.parameters("retarget_left_node")
    assert (right["robot"], right["urdf"]) == ("allegro", "/r.urdf")
    assert (left_params["robot"], left_params["urdf"]) == ("allegro_left", "/l.urdf")
    for side, params in (("right", right), ("left", left_params)):
        assert params["hand_side"] == side
        assert params["joint_states_topic"] == f"/hand/{side}/joint_states"
        assert params["robot_state_topic"] == f"/{side}/joint_states"
    # Everything else of the left node comes from the file's retarget_node section.
    file_values = load_node_parameters()["retarget_node"]
    for name, value in file_values.items():
        if name not in ("robot", "urdf", "hand_side", "joint_states_topic", "robot_state_topic"):
            assert left_params[name] == value, name


def test_the_left_robot_never_inherits_the_right_robots_urdf_from_the_file(tmp_path):
    text = (REPO_ROOT / "config" / "teleop.yaml").read_text()
    params = tmp_path / "params.yaml"
    params.write_text(text.replace('urdf: ""', 'urdf: /right.urdf', 1)
                      + "retarget_left_node:\n  ros__parameters:\n    rate_hz: 20.0\n")
    plan = plan_graph({"params": str(params), "robot_left": "hand_pose_ros_hand_left"})
    assert plan.parameters("retarget_node")["urdf"] == "/right.urdf"
    left = plan.parameters("retarget_left_node")
    assert left["urdf"] == "" and left["robot"] == "hand_pose_ros_hand_left"
    assert left["rate_hz"] == 20.0  # its own section goes over the shared one
    # The launch file passes the shared section first, then the file, then the overrides.
    launch_parameters = _launch_module().node_parameters(plan, "retarget_left_node")
    assert launch_parameters[0] == plan.section_parameters("retarget_left_node")
    assert launch_parameters[1:] == [str(params), plan.node("retarget_left_node").overrides]
    assert _launch_module().node_parameters(plan, "ik_node") == [
        str(params), plan.node("ik_node").overrides]


def test_bimanual_rviz_config_adds_the_left_robot_model():
    import yaml

    launch = _launch_module()
    text = (REPO_ROOT / "config" / "teleop.rviz").read_text()
    config = yaml.safe_load(launch.bimanual_rviz_config(text))
    models = [d for d in config["Visualization Manager"]["Displays"]
              if d["Class"] == "rviz_default_plugins/RobotModel"]  # fmt: skip
    assert [m["Description Topic"]["Value"] for m in models] == [
        "/robot_description", "/left/robot_description"]
    assert models[1]["TF Prefix"] == "left"
    # The rest of the scene is the single-robot config's.
    single = yaml.safe_load(text)
    assert len(config["Visualization Manager"]["Displays"]) == len(
        single["Visualization Manager"]["Displays"]) + 1
