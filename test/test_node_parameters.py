"""Node parameters on real rclpy: declared from the stage configs (one default each, the
shipped YAML agrees), every one live or refused with a reason, live changes applied, and
the retarget node refusing to drive with a hand model other than the IK node's."""

from __future__ import annotations

import time

import numpy as np
import pytest
from conftest import spin_until
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState

from hand_pose_ros.nodes.config_params import (
    build_config,
    config_parameters,
    parameter_descriptions,
    replace_config,
)
from hand_pose_ros.nodes.live_params import RESTART_REASON
from hand_pose_ros.nodes.qos import COMMAND_QOS
from hand_pose_ros.params import load_node_parameters
from hand_pose_ros.pipeline.estimators import EstimatorStageConfig
from hand_pose_ros.pipeline.stages import IKStageConfig, RobotStageConfig


def _networks_available() -> None:
    from hand_pose_ros.handnets.registry import WheelNotInstalledError, locate_tflite

    try:
        locate_tflite("palm_full")
    except WheelNotInstalledError as exc:
        pytest.skip(f"hand networks not available: {exc}")


#: Parameters every rclpy node declares itself.
ROS_BUILTIN = ("use_sim_time", "start_type_description_service")


def _declared(node) -> dict:
    """The node's own parameters: name -> value."""
    return {name: p.value for name, p in node._parameters.items() if name not in ROS_BUILTIN}


def _set(node, name: str, value):
    return node.set_parameters([Parameter(name, value=value)])[0]


# --- the helper, without ROS ------------------------------------------------------------


def test_nested_configs_become_dotted_parameters_with_their_defaults_and_docs():
    values = config_parameters(IKStageConfig())
    assert values["post_opt.iterations"] == 3 and values["post_opt.temporal_weight"] == 2.0
    assert values["plausibility.max_depth_m"] == 5.0 and values["post_opt_enabled"] is True
    assert "post_opt_iterations" not in values and "temporal_weight" not in values
    docs = parameter_descriptions(RobotStageConfig)
    assert "One Euro" in docs["filter.min_cutoff_hz"] and "config/robots" in docs["robot"]
    config = build_config(IKStageConfig, {"post_opt.iterations": 5})
    assert config.post_opt.iterations == 5 and config.post_opt.temporal_weight == 2.0
    with pytest.raises(ValueError, match=r"^post_opt\.iterations: "):
        replace_config(IKStageConfig(), {"post_opt.iterations": -1})
    with pytest.raises(ValueError, match=r"^filter\.hold_s: must be a float"):
        replace_config(RobotStageConfig(), {"filter.hold_s": "long"})
    with pytest.raises(ValueError, match=r"^hfov_deg: "):
        replace_config(EstimatorStageConfig(), {"hfov_deg": 200.0})


# --- the nodes --------------------------------------------------------------------------


@pytest.fixture
def nodes(rclpy_context):
    """The three nodes with their declared defaults (no parameter file)."""
    from hand_pose_ros.nodes.estimator_node import EstimatorNode
    from hand_pose_ros.nodes.ik_node import IKNode
    from hand_pose_ros.nodes.retarget_node import RetargetNode

    _networks_available()
    made = {}
    for name, cls in (("ik_node", IKNode), ("retarget_node", RetargetNode),
                      ("estimator_node", EstimatorNode)):  # fmt: skip
        made[name] = cls(context=rclpy_context)
    yield made
    for node in made.values():
        node.destroy_node()


def test_shipped_yaml_sets_only_declared_parameters_at_their_defaults(nodes):
    shipped = load_node_parameters()
    for name, node in nodes.items():
        declared = _declared(node)
        for key, value in shipped[name].items():
            assert key in declared, f"config/teleop.yaml {name}.{key} is not a parameter"
            assert value == declared[key], f"{name}.{key}: {value!r} != {declared[key]!r}"


def test_every_parameter_is_live_or_refused_with_a_reason(nodes):
    from hand_pose_ros.nodes import ik_node, retarget_node

    startup = {"ik_node": set(ik_node.STARTUP_REASONS),
               "retarget_node": set(retarget_node.STARTUP_REASONS),
               "estimator_node": set()}  # fmt: skip
    counts = {}
    for name, node in nodes.items():
        refused = set()
        for key, value in _declared(node).items():
            result = _set(node, key, value)  # the same value: only start-up ones refuse
            if not result.successful:
                assert result.reason.startswith(f"{key}: ") and RESTART_REASON in result.reason
                refused.add(key)
        assert refused == startup[name], name
        counts[name] = len(_declared(node))
    # The stage config's fields, plus the node's own per-message settings.
    assert counts == {"ik_node": len(config_parameters(IKStageConfig())) + 4,
                      "retarget_node": len(config_parameters(RobotStageConfig())) + 6,
                      "estimator_node": len(config_parameters(EstimatorStageConfig()))}  # fmt: skip


def test_ik_node_applies_post_optimization_changes_live(nodes):
    from hand_pose_ros.pipeline.demo import DemoHand

    node = nodes["ik_node"]
    demo = DemoHand()
    first, second = demo.frame_at(0).joints_cam, demo.frame_at(12).joints_cam

    def step() -> float:
        """DoF change (radians, largest) from the first frame to the second, tracked."""
        node.stage.reset()
        a = node.stage.solve(first, "right", track_id=0)
        b = node.stage.solve(second, "right", track_id=0)
        return float(np.abs(b.bio[0] - a.bio[0]).max())

    free = step()
    result = _set(node, "post_opt.temporal_weight", 1e5)
    assert result.successful, result.reason
    assert node.stage.solver.post_optimizer.config.temporal_weight == 1e5
    held = step()
    assert held < 0.5 * free, f"temporal_weight not applied: {free:.3f} -> {held:.3f} rad"
    result = _set(node, "post_opt.iterations", -1)
    assert not result.successful and "post_opt.iterations" in result.reason
    assert node.stage.solver.post_optimizer.config.iterations == 3
    result = _set(node, "hand_model", "/tmp/MANO_RIGHT.pkl")
    assert not result.successful and "restart" in result.reason
    assert "retarget node" in result.reason


def test_retarget_node_applies_rate_and_filter_live_and_refuses_the_robot(nodes):
    node = nodes["retarget_node"]
    ctx = node.context
    listener = Node("command_listener", context=ctx)
    stamps: list[float] = []
    listener.create_subscription(JointState, "/hand/joint_states",
                                 lambda _: stamps.append(time.monotonic()), COMMAND_QOS)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    executor.add_node(listener)

    def rate(seconds: float = 1.5) -> float:
        spin_until(executor, 0.3)
        start = len(stamps)
        spin_until(executor, seconds)
        return (len(stamps) - start) / seconds

    try:
        fast = rate()  # no hand: every timer tick publishes the hand-lost command
        assert _set(node, "rate_hz", 4.0).successful
        slow = rate()
        assert slow < 0.5 * fast and slow <= 6.0, (fast, slow)
        assert _set(node, "filter.hold_s", 2.0).successful
        assert node.stage.filter.config.hold_s == 2.0
        result = _set(node, "filter.hold_s", -1.0)
        assert not result.successful and "filter.hold_s" in result.reason
        result = _set(node, "robot", "leap")
        assert not result.successful and "joint names" in result.reason
        assert "restart" in result.reason and node.stage.config.robot != "leap"
    finally:
        executor.shutdown()
        listener.destroy_node()


def test_estimator_node_rebuilds_live_and_refuses_what_it_cannot_build(nodes):
    node = nodes["estimator_node"]
    before = node.estimator
    assert _set(node, "min_score", 0.8).successful and node.config.min_score == 0.8
    assert _set(node, "max_hands", 1).successful
    assert node.estimator is not before and node.estimator.cfg.max_hands == 1
    result = _set(node, "estimator", "nope")
    assert not result.successful and "unknown estimator" in result.reason
    result = _set(node, "backend", "tensorrt")
    assert not result.successful and "restart" in result.reason
    assert node.config.backend == "onnx" and node.config.estimator == "handtrack"


def test_retarget_node_drives_nothing_with_another_hand_model_than_the_ik_node(rclpy_context):
    from hand_pose_ros.nodes.retarget_node import RetargetNode

    ctx = rclpy_context
    ik = Node("ik_node", context=ctx)  # stands for an IK node on another hand model
    ik.declare_parameter("hand_model", "/models/MANO_RIGHT.pkl")
    node = RetargetNode(context=ctx)
    levels = []
    listener = Node("diagnostics_listener", context=ctx)
    listener.create_subscription(DiagnosticArray, "/diagnostics", lambda m: levels.extend(
        (s.level, s.message) for s in m.status if s.name == "hand_pose_ros/retarget"), 10)
    executor = SingleThreadedExecutor(context=ctx)
    for n in (ik, node, listener):
        executor.add_node(n)
    try:
        spin_until(executor, 10.0, until=lambda: node.hand_model_error is not None)
        assert node.hand_model_error is not None and "MANO_RIGHT" in node.hand_model_error
        spin_until(executor, 2.0, until=lambda: levels and levels[-1][0] == b"\x02")
        assert levels[-1][0] == b"\x02" and "hand_model" in levels[-1][1]
    finally:
        executor.shutdown()
        for n in (ik, node, listener):
            n.destroy_node()
