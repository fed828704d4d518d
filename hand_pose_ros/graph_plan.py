"""The teleop graph as plain data: which nodes run, with which parameter overrides (no ROS).

``ros2 launch hand_pose_ros teleop.launch.py`` and ``hand-teleop run`` both build their
graph from :func:`plan_graph`, so a launch argument and the CLI flag of the same name mean
the same thing: the same nodes start and the same parameters are overridden.

Every node reads the parameter file (``config/teleop.yaml`` or ``params``); an option left
empty keeps the file's value. A few options exist on one side only, on purpose
(:data:`LAUNCH_ONLY`, :data:`CLI_ONLY`: process management there, in-process outputs here).

Bimanual teleop (``robot_left`` set): two retarget nodes, ``retarget_node`` for the right
robot (``robot``) and ``retarget_left_node`` for the left one (``robot_left``), each fed
by its own side's hand states and publishing on :func:`joint_states_topic` of its side;
the left node reads the file's ``retarget_node`` section, then its own
``retarget_left_node`` section where the file has one (:attr:`NodePlan.section`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hand_pose_ros.estimation.detections import HAND_SIDES
from hand_pose_ros.params import DEFAULT_PARAMS, load_node_parameters
from hand_pose_ros.pipeline.estimators import (
    DEFAULT_ESTIMATOR,
    ESTIMATOR_CONVENTIONS,
    ESTIMATOR_NAMES,
)
from hand_pose_ros.runtime.weights import BACKENDS

#: Source kinds: ``demo``, ``video:PATH``, ``webcam:N``, ``keypoints:FILE``, ``ros``.
SOURCE_KINDS: tuple[str, ...] = ("demo", "video", "webcam", "keypoints", "ros")
#: The estimator option's values besides the image estimators: the demo's own keypoints.
TRUTH = "truth"


@dataclass(frozen=True)
class GraphOption:
    """One option of the graph: a launch argument ``name:=`` and a CLI flag ``--name``."""

    help: str
    default: str = ""
    """As text, like a launch argument; empty: the parameter file's value."""
    kind: type = str
    """str, int, float or bool: how the text is parsed (and the CLI flag's type)."""
    choices: tuple[str, ...] | None = None


#: Options both front ends take (launch: ``name:=value``, CLI: ``--name value``).
GRAPH_OPTIONS: dict[str, GraphOption] = {
    "source": GraphOption(
        "Frame source: demo (a scripted synthetic hand), video:PATH, webcam:N, keypoints:FILE "
        "(a recorded (N, 21, 3) keypoint file straight into the IK) or ros (your own camera "
        "node publishes /camera/image_raw).", default="demo"),
    "robot": GraphOption(
        "Robot hand config: a name in config/robots (hand_pose_ros_hand, allegro, leap, "
        "shadow, ability, inspire, each also *_left) or a path to a robot YAML. Empty: the "
        "params file's retarget_node.robot (hand_pose_ros_hand in config/teleop.yaml)."),
    "urdf": GraphOption(
        "The robot's URDF file, or a dex-urdf robots folder; required for robot configs that "
        "ship no URDF (all but hand_pose_ros_hand)."),
    "robot_left": GraphOption(
        "Bimanual teleop: the left robot's hand config (e.g. hand_pose_ros_hand_left, "
        "allegro_left). Then the right hand drives robot on /hand/right/joint_states and the "
        "left hand drives this one on /hand/left/joint_states, each with its own hand-lost "
        "policy. Empty: one robot, driven by every hand on /hand/joint_states."),
    "urdf_left": GraphOption(
        "The left robot's URDF file or a dex-urdf robots folder (as urdf, for robot_left)."),
    "estimator": GraphOption(
        "Image estimator: handtrack (= auto) | handtrack_mesh (+ the hand mesh) | mediapipe | "
        "ours, or truth: the demo's own keypoints instead of its image (source demo only). "
        "Empty: the params file's estimator_node.estimator (handtrack in config/teleop.yaml).",
        choices=(*ESTIMATOR_NAMES, TRUTH)),
    "backend": GraphOption(
        "Runtime of our networks (handtrack, ours): onnx | torch | tensorrt. Empty: the "
        "params file's value.", choices=BACKENDS),
    "hand_side": GraphOption(
        "The operator's hand: auto (the estimator's handedness) | right | left (every "
        "frame's best hand is taken as this side). Empty: the params file's value.",
        choices=HAND_SIDES),
    "operator_profile": GraphOption(
        "Operator profile YAML from `hand-teleop calibrate`: a known hand shape (the IK node) "
        "and/or the operator's open-hand and fist calibration (the retarget nodes). Empty: "
        "the params file's values (none: the shape is estimated per frame, joint angles are "
        "used as estimated)."),
    "post_opt": GraphOption(
        "IK post-optimization after the IK net: true | false. Empty: the params file's value.",
        kind=bool),
    "rate": GraphOption(
        "Source frame rate in Hz (demo, video, keypoints). Empty: the params file's / the "
        "video's own rate.", kind=float),
    "frames": GraphOption(
        "The source stops after this many frames; 0: it does not stop (a video or keypoint "
        "file ends at its end; `hand-teleop run` ends after one pass of the demo script).",
        default="0", kind=int),
    "params": GraphOption("Parameter YAML for all nodes. Empty: the package's config/teleop.yaml."),
}

#: Options of ``ros2 launch`` only: processes, RViz and TF that the in-process runner has no
#: use for (it is one process; its viz and recording are its own flags).
LAUNCH_ONLY: tuple[str, ...] = ("use_rviz", "use_robot_state_publisher", "use_static_tf",
                                "respawn", "respawn_delay")  # fmt: skip
#: Options of ``hand-teleop run`` only: outputs of the in-process monitor.
CLI_ONLY: tuple[str, ...] = ("viz", "record", "summary")

#: Node name -> executable (scripts/ros), in start order (bimanual teleop adds
#: :data:`LEFT_ROBOT_NODE`, a second retarget node).
NODE_EXECUTABLES: dict[str, str] = {
    "demo_source": "demo_source",
    "camera_source": "camera_source",
    "keypoints_player": "keypoints_player",
    "estimator_node": "estimator_node",
    "ik_node": "ik_node",
    "retarget_node": "retarget_node",
    "wrist_pose_node": "wrist_pose_node",
}
#: Source kind -> the node publishing its frames (``ros``: someone else's camera node).
SOURCE_NODES: dict[str, str | None] = {
    "demo": "demo_source", "video": "camera_source", "webcam": "camera_source",
    "keypoints": "keypoints_player", "ros": None,
}  # fmt: skip
#: Option -> (node, parameter) it sets, where that does not depend on the source.
OPTION_PARAMETERS: dict[str, tuple[str, str]] = {
    "robot": ("retarget_node", "robot"),
    "urdf": ("retarget_node", "urdf"),
    "estimator": ("estimator_node", "estimator"),
    "backend": ("estimator_node", "backend"),
    "hand_side": ("estimator_node", "hand_side"),
    "operator_profile": ("ik_node", "operator_profile"),
    "post_opt": ("ik_node", "post_opt_enabled"),
}
#: Bimanual teleop: the left robot's retarget node (executable ``retarget_node``, reading
#: the params file's ``retarget_node`` section, then its own).
LEFT_ROBOT_NODE = "retarget_left_node"
#: Bimanual teleop: hand side -> the retarget node driving that side's robot.
ROBOT_NODES: dict[str, str] = {"right": "retarget_node", "left": LEFT_ROBOT_NODE}
#: Bimanual options -> the left robot node's parameter they set.
LEFT_OPTION_PARAMETERS: dict[str, str] = {"robot_left": "robot", "urdf_left": "urdf"}
#: Single robot: its commands' topic (every hand drives it).
JOINT_STATES_TOPIC = "/hand/joint_states"


def joint_states_topic(side: str | None = None) -> str:
    """The command topic of one side's robot (bimanual), or of the single robot (None)."""
    return JOINT_STATES_TOPIC if side is None else f"/hand/{side}/joint_states"


def robot_state_topic(side: str) -> str:
    """Bimanual: where the ``side`` robot's driver publishes its measured joints (a driver
    in namespace ``side``: ``/<side>/joint_states``)."""
    return f"/{side}/joint_states"


#: Source node -> its frame-rate parameter (``rate``).
RATE_PARAMETERS: dict[str, str] = {"demo_source": "fps", "camera_source": "fps",
                                   "keypoints_player": "rate_hz"}  # fmt: skip


class GraphConfigError(ValueError):
    """An option value the graph cannot run with (one line for the user, no traceback)."""


@dataclass(frozen=True)
class NodePlan:
    """One node of the graph: its executable and the parameters set over the params file."""

    name: str
    executable: str
    overrides: dict[str, Any] = field(default_factory=dict)
    section: str = ""
    """Params-file section read before the node's own (empty: its own only); the left robot
    node reads ``retarget_node``'s."""


@dataclass(frozen=True)
class GraphPlan:
    """The nodes to start (in order) and the parameter file they all read."""

    source_kind: str
    source_arg: str
    params_file: Path
    nodes: tuple[NodePlan, ...]
    file_parameters: dict[str, dict[str, Any]]
    """The params file's values, ``{node: {name: value}}`` (nested names dotted)."""
    frames: int = 0
    """The ``frames`` option: the source stops after this many frames (0: it does not)."""

    @property
    def node_names(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.nodes)

    @property
    def source_node(self) -> str | None:
        return SOURCE_NODES[self.source_kind]

    @property
    def bimanual(self) -> bool:
        """Two robots, one per hand side (the ``robot_left`` option)."""
        return LEFT_ROBOT_NODE in self.node_names

    @property
    def robot_nodes(self) -> dict[str | None, str]:
        """Hand side -> its robot's retarget node; one robot: ``{None: "retarget_node"}``."""
        return dict(ROBOT_NODES) if self.bimanual else {None: "retarget_node"}

    def node(self, name: str) -> NodePlan:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(f"{name} is not part of this graph ({', '.join(self.node_names)})")

    def section_parameters(self, name: str) -> dict[str, Any]:
        """The values node ``name`` reads from another section of the file (its
        :attr:`NodePlan.section`), before its own; empty when it reads its own only."""
        section = self.node(name).section
        return dict(self.file_parameters.get(section, {})) if section else {}

    def parameters(self, name: str) -> dict[str, Any]:
        """The parameters node ``name`` runs with: the file's values (another section's,
        then its own), then the overrides."""
        return {**self.section_parameters(name), **self.file_parameters.get(name, {}),
                **self.node(name).overrides}  # fmt: skip


def parse_option(name: str, text: str) -> Any:
    """An option's text (a launch argument, a CLI value) -> its value; None when empty."""
    option = GRAPH_OPTIONS[name]
    text = str(text).strip()
    if text == "":
        return None
    if option.kind is bool:
        if text.lower() not in ("true", "false"):
            raise GraphConfigError(f"{name}: expected true or false, got {text!r}")
        return text.lower() == "true"
    if option.kind in (int, float):
        try:
            value = option.kind(text)
        except ValueError:
            raise GraphConfigError(f"{name}: expected a number, got {text!r}") from None
        if value < 0 or (name == "rate" and value == 0):
            raise GraphConfigError(f"{name}: must be {'> 0' if name == 'rate' else '>= 0'}, "
                                   f"got {text}")  # fmt: skip
        return value
    if option.choices is not None and text not in option.choices:
        raise GraphConfigError(f"{name}: expected one of {', '.join(option.choices)}, got {text!r}")
    return text


def parse_source(spec: str) -> tuple[str, str]:
    """``demo`` | ``video:PATH`` | ``webcam:N`` | ``keypoints:FILE`` | ``ros`` -> (kind, arg)."""
    kind, _, arg = spec.partition(":")
    if kind not in SOURCE_KINDS:
        raise GraphConfigError(f"source {spec!r}: expected demo, video:PATH, webcam:N, "
                               "keypoints:FILE.npz or ros")  # fmt: skip
    if kind in ("video", "webcam", "keypoints") and not arg:
        raise GraphConfigError(f"source {kind!r} needs an argument, e.g. {kind}:...")
    return kind, arg


def plan_graph(options: dict[str, Any]) -> GraphPlan:
    """The graph for ``options`` (option name -> value or text; missing/None/'': default).

    Raises:
        GraphConfigError: an option value the graph cannot run with, e.g. ``estimator``
            ``truth`` without the demo source.
        FileNotFoundError: the parameter file does not exist.
    """
    unknown = set(options) - set(GRAPH_OPTIONS)
    if unknown:
        raise GraphConfigError(f"unknown graph options: {', '.join(sorted(unknown))}")
    value = {name: _value(name, options.get(name)) for name in GRAPH_OPTIONS}
    kind, arg = parse_source(value["source"])
    truth = value["estimator"] == TRUTH
    if truth and kind != "demo":
        raise GraphConfigError("estimator truth needs source demo (only the demo knows the "
                               "true keypoints)")  # fmt: skip
    params_file = Path(value["params"] or DEFAULT_PARAMS)
    file_parameters = load_node_parameters(params_file)
    overrides: dict[str, dict[str, Any]] = {name: {} for name in NODE_EXECUTABLES}
    for option, (node, parameter) in OPTION_PARAMETERS.items():
        if value[option] is not None and not (option == "estimator" and truth):
            overrides[node][parameter] = value[option]
    if value["operator_profile"] is not None:
        # One operator, one profile: the IK node takes its shape, the robot its flexion
        # calibration (the left robot's node too, in _bimanual).
        overrides["retarget_node"]["operator_profile"] = value["operator_profile"]
    if file_parameters.get("ik_node", {}).get("keypoint_convention", "auto") == "auto":
        # The IK takes its input's keypoint convention: the estimator's, or ours for our
        # model's own keypoints (the demo's truth) and keypoint files (set mano for GRAB).
        name = (value["estimator"]
                or file_parameters.get("estimator_node", {}).get("estimator", DEFAULT_ESTIMATOR))
        overrides["ik_node"]["keypoint_convention"] = (
            "ours" if truth or kind == "keypoints" else ESTIMATOR_CONVENTIONS[name])
    source = SOURCE_NODES[kind]
    if kind == "demo":
        # The demo's image goes through the estimator like a camera image; truth bypasses it.
        overrides[source]["publish_keypoints"] = truth
    elif kind in ("video", "webcam"):
        overrides[source]["source"] = value["source"]
    elif kind == "keypoints":
        overrides[source]["file"] = arg
        # Recorded joints are in their own frame (often wrist at the origin), not in front
        # of a camera: the IK node's depth rule does not apply.
        overrides["ik_node"]["plausibility.check_depth"] = False
    if source is not None:
        if value["rate"] is not None:
            overrides[source][RATE_PARAMETERS[source]] = value["rate"]
        if value["frames"]:
            overrides[source]["max_frames"] = value["frames"]
    wanted = ["ik_node", "retarget_node", "wrist_pose_node"]
    if source is not None:
        wanted.insert(0, source)
    estimator = kind in ("video", "webcam", "ros") or (kind == "demo" and not truth)
    if estimator:
        wanted.insert(wanted.index("ik_node"), "estimator_node")
    nodes = [NodePlan(name, NODE_EXECUTABLES[name], overrides[name]) for name in wanted]
    if value["robot_left"] is not None:
        nodes = _bimanual(nodes, value, file_parameters, estimator)
    elif value["urdf_left"] is not None:
        raise GraphConfigError("urdf_left is the left robot's URDF: it needs robot_left")
    return GraphPlan(kind, arg, params_file, tuple(nodes), file_parameters, value["frames"])


def _bimanual(nodes: list[NodePlan], value: dict[str, Any],
              file_parameters: dict[str, dict[str, Any]],
              estimator: bool) -> list[NodePlan]:  # fmt: skip
    """The single-robot graph's nodes made bimanual: both hands through the IK, one
    retarget node per side (the left one added after the right one)."""
    if estimator:
        est = {**file_parameters.get("estimator_node", {}),
               **next(n.overrides for n in nodes if n.name == "estimator_node")}  # fmt: skip
        if est.get("hand_side", "auto") != "auto":
            raise GraphConfigError(f"robot_left (bimanual) needs hand_side auto, got "
                                   f"{est['hand_side']!r}: each hand drives its own side's "
                                   "robot")  # fmt: skip
        if int(est.get("max_hands", 2)) < 2:
            raise GraphConfigError(f"robot_left (bimanual) needs the estimator's max_hands "
                                   f">= 2, got {est['max_hands']} (params file)")  # fmt: skip
    out = []
    for node in nodes:
        extra: dict[str, Any] = {}
        if node.name == "demo_source":
            extra = {"hands": 2}
        elif node.name == "ik_node":
            extra = {"max_hands": 2}
        elif node.name == "retarget_node":
            extra = _side_parameters("right")
        out.append(NodePlan(node.name, node.executable, {**node.overrides, **extra}))
        if node.name == "retarget_node":
            # Never the right robot's model: robot and urdf come from the left options (or
            # the file's own left section), not from the retarget_node section it reads.
            own = file_parameters.get(LEFT_ROBOT_NODE, {})
            left = {parameter: value[option] if value[option] is not None
                    else own.get(parameter, "")
                    for option, parameter in LEFT_OPTION_PARAMETERS.items()}  # fmt: skip
            operator = {k: v for k, v in node.overrides.items() if k == "operator_profile"}
            out.append(NodePlan(LEFT_ROBOT_NODE, NODE_EXECUTABLES["retarget_node"],
                                {**left, **operator, **_side_parameters("left")},
                                section="retarget_node"))  # fmt: skip
    return out


def _side_parameters(side: str) -> dict[str, Any]:
    """A bimanual retarget node's side: its hand states, its command and robot topics."""
    return {"hand_side": side, "joint_states_topic": joint_states_topic(side),
            "robot_state_topic": robot_state_topic(side)}


def _value(name: str, given: Any) -> Any:
    if given is None or (isinstance(given, str) and given.strip() == ""):
        return parse_option(name, GRAPH_OPTIONS[name].default)
    if isinstance(given, str):
        return parse_option(name, given)
    if isinstance(given, Path):
        return str(given)
    return parse_option(name, str(given).lower() if isinstance(given, bool) else str(given))
