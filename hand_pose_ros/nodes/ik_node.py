"""IK node: /hand/keypoints -> /hand/state (shape, 23 DoF, wrist pose) and /hand/markers.

One keypoint message is one hand; every hand is solved and published as its own
HandState (handedness and track id kept; left hands are solved mirrored, see
msg/HandState.msg), warm-started from the previous state of the same track. With
``max_hands`` 2 (bimanual teleop) both hands of an image are taken, not the newest only.
With the camera's intrinsics (/camera/camera_info) the post-optimization also fits the
message's 2D keypoints (``post_opt.reprojection_weight``); without them it fits 3D only.
A message with the estimator's mesh (``vertices``, estimator ``handtrack_mesh``) is shown
on /hand/markers beside the fitted one (namespace ``estimated``,
``publish_estimated_mesh``) and, with ``fit_estimated_mesh``, fitted by the
post-optimization's vertex term too (``post_opt.vertex_weight``).
"""

from __future__ import annotations

import time
from collections import Counter

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo
from visualization_msgs.msg import MarkerArray

from hand_pose_ros.msg import HandKeypoints, HandState
from hand_pose_ros.nodes.callback_guard import CallbackGuard
from hand_pose_ros.nodes.config_params import (
    STARTUP_ONLY_NOTE,
    declare_config_parameters,
    read_config_parameters,
    replace_config,
)
from hand_pose_ros.nodes.conversions import (
    hand_state_to_msg,
    keypoints_from_msg,
    vertices_from_msg,
)
from hand_pose_ros.nodes.diagnostics import RateMeter, diagnostic_array
from hand_pose_ros.nodes.live_params import in_range, live_parameters_callback
from hand_pose_ros.nodes.markers import (
    ESTIMATED_COLOURS,
    ESTIMATED_NAMESPACE,
    SerializedHandMarkers,
)
from hand_pose_ros.nodes.qos import (
    IMAGE_QOS,
    PER_HAND_SUB_QOS,
    RESULT_PUB_QOS,
    RESULT_SUB_QOS,
)
from hand_pose_ros.nodes.queued import take_queued
from hand_pose_ros.nodes.spin import spin_node
from hand_pose_ros.pipeline.stages import IKStage, IKStageConfig

#: Why each parameter the IK stage is built from (``IK_BUILD_FIELDS``) cannot change live.
STARTUP_REASONS = {
    "hand_model": "the hand model is loaded once (and must match the retarget node's)",
    "weights": "the IK net is loaded once",
    "operator_profile": "the operator's hand shape is loaded once",
    "max_hands": "the /hand/keypoints subscription's queue depth is set from it",
}
#: ``max_hands`` -> the /hand/keypoints subscription: the newest message only, or one per hand.
KEYPOINTS_QOS = {1: RESULT_SUB_QOS, 2: PER_HAND_SUB_QOS}


class IKNode(Node):
    """Runs the biomechanical IK (+ post-optimization) on every keypoint message.

    Parameters: every field of :class:`IKStageConfig` (``post_opt.*``: the
    post-optimization, ``plausibility.*``: the human ranges), all live except the three
    the stage is built from, plus ``min_score``, ``publish_markers`` and
    ``publish_estimated_mesh`` (live) and ``max_hands`` (start-up).
    """

    def __init__(self, **kwargs) -> None:
        super().__init__("ik_node", **kwargs)
        declare_config_parameters(self, IKStageConfig(), startup_only=STARTUP_REASONS)
        self.declare_parameter("min_score", 0.3, ParameterDescriptor(
            description="Keypoint messages scored below this are skipped, in [0, 1]."))  # fmt: skip
        self.declare_parameter("publish_markers", True, ParameterDescriptor(
            description="Publish the hand mesh and skeleton on /hand/markers."))  # fmt: skip
        self.declare_parameter("publish_estimated_mesh", True, ParameterDescriptor(
            description="With publish_markers: also publish the estimator's own mesh and "
                        "joints (keypoint messages with vertices) on /hand/markers, "
                        "namespace 'estimated'."))  # fmt: skip
        self.declare_parameter("max_hands", 1, ParameterDescriptor(
            description="Hands per image taken from /hand/keypoints: 1 (the newest message "
                        "only, for one robot) or 2 (both hands of a frame, for bimanual "
                        "teleop)" + STARTUP_ONLY_NOTE))  # fmt: skip
        max_hands = int(self.get_parameter("max_hands").value)
        if max_hands not in KEYPOINTS_QOS:
            raise ValueError(f"parameter 'max_hands' must be 1 or 2, got {max_hands}")
        self.stage = IKStage(read_config_parameters(self, IKStageConfig))
        self.faces = self.stage.model.faces
        self.state_pub = self.create_publisher(HandState, "/hand/state", RESULT_PUB_QOS)
        self.marker_pub = self.create_publisher(MarkerArray, "/hand/markers", RESULT_PUB_QOS)
        # Published as serialized bytes: building thousands of Point objects per frame
        # costs ~50 ms in rclpy (nodes/markers.py).
        self.markers = SerializedHandMarkers()
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.guard = CallbackGuard(self, "ik")
        self.max_hands = max_hands
        self.keypoints_sub = self.create_subscription(
            HandKeypoints, "/hand/keypoints", self.guard.wrap(self.on_keypoints),
            KEYPOINTS_QOS[max_hands])  # fmt: skip
        self.K: np.ndarray | None = None
        """The camera intrinsics (3, 3) from /camera/camera_info, or None (no 2D term)."""
        self._warned_no_camera_info = False
        self.create_subscription(CameraInfo, "/camera/camera_info",
                                 self.guard.wrap(self.on_camera_info), IMAGE_QOS)  # fmt: skip
        self.add_on_set_parameters_callback(live_parameters_callback(
            STARTUP_REASONS, {"min_score": in_range(0.0, 1.0)}, self.apply_parameters))  # fmt: skip
        self.rate = RateMeter()
        self.last_ms = 0.0
        self.frames = 0
        """Keypoint messages solved (refused hands included)."""
        self.states_published = 0
        self.states_by_side: Counter[str] = Counter()
        """Hand states published per handedness."""
        self.rejected: Counter[str] = Counter()
        """Implausible hands refused, by rule (palm length, bone, wrist depth, fit error...)."""

    def apply_parameters(self, params) -> None:
        """Live changes of the stage config (post-optimization, plausibility), validated
        together (ValueError naming the parameter refuses them all); ``min_score``,
        ``publish_markers`` and ``publish_estimated_mesh`` are read per message."""
        config = replace_config(self.stage.config, {p.name: p.value for p in params})
        self.stage.reconfigure(config)

    def on_camera_info(self, msg: CameraInfo) -> None:
        """Keep the intrinsics for the reprojection term (a K with fx or fy <= 0 is ignored)."""
        k = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
        if k[0, 0] > 0 and k[1, 1] > 0 and np.isfinite(k).all():
            self.K = k

    def on_keypoints(self, msg: HandKeypoints) -> None:
        """Solve this hand; with ``max_hands`` 2 also the other hand queued behind it (taken
        now, so a busy executor cannot starve one hand: nodes/queued.py), the newest
        message of each hand only."""
        messages = [msg]
        if self.max_hands > 1:
            messages += take_queued(self.keypoints_sub, self.max_hands - 1)
        newest = {}  # per hand: two frames of one hand (the other hand gone) solve only the newer
        for message in messages:
            newest[(message.handedness, message.track_id)] = message
        for message in newest.values():
            self.solve_hand(message)

    def solve_hand(self, msg: HandKeypoints) -> None:
        """Solve one hand's keypoints and publish its state (or count its refusal)."""
        if msg.handedness not in ("right", "left"):
            self.get_logger().error(f"dropping keypoints with handedness {msg.handedness!r}")
            return
        if msg.score < float(self.get_parameter("min_score").value):
            return  # too uncertain: the retargeting node's hand-lost policy takes over
        joints, image_points, confidence = keypoints_from_msg(msg)
        vertices = self._estimated_vertices(msg)
        joints[confidence <= 0.0] = np.nan  # zero confidence marks a missing keypoint
        if image_points.shape != (21, 2) or confidence.shape != (21,) \
                or not image_points.any():  # fmt: skip
            image_points, confidence = None, None  # no 2D keypoints (published as zeros)
        if self.K is None and not self._warned_no_camera_info:
            self._warned_no_camera_info = True
            self.get_logger().info("no /camera/camera_info yet: the IK fits the 3D keypoints "
                                   "only (no reprojection term) until it comes")  # fmt: skip
        publish_markers = bool(self.get_parameter("publish_markers").value)
        start = time.perf_counter()
        # The mesh is only posed for the markers (the retarget node re-poses the hand itself).
        state = self.stage.solve(joints, msg.handedness, msg.track_id,
                                 with_vertices=publish_markers, image_points=image_points,
                                 confidence=confidence, K=self.K,
                                 vertices=vertices)  # fmt: skip
        self.last_ms = (time.perf_counter() - start) * 1e3
        self.frames += 1
        self.rate.tick()
        estimated = None
        if publish_markers and vertices is not None \
                and bool(self.get_parameter("publish_estimated_mesh").value):  # fmt: skip
            estimated = (joints, vertices)
        if not state.valid[0]:
            # Implausible or degenerate: like a lost hand, the robot side holds then eases.
            reason = self.stage.last_rejection or "degenerate keypoints"
            self.rejected[_rule(reason)] += 1
            self.get_logger().warn(f"hand refused ({reason}): no hand state published",
                                   throttle_duration_sec=2.0)  # fmt: skip
            if estimated is not None:  # the estimator's hand alone: what was refused
                self.marker_pub.publish(self.markers(
                    *estimated, self.faces, stamp=msg.header.stamp,
                    frame_id=msg.header.frame_id, namespace=ESTIMATED_NAMESPACE,
                    track_id=max(msg.track_id, 0), colours=ESTIMATED_COLOURS))  # fmt: skip
            self._publish_diagnostics(msg, None, reason)
            return
        out = hand_state_to_msg(state, header=msg.header, track_id=msg.track_id, score=msg.score)
        self.state_pub.publish(out)
        self.states_published += 1
        self.states_by_side[msg.handedness] += 1
        if publish_markers:
            self.marker_pub.publish(self.markers(
                state.joints[0], state.vertices[0], self.faces, stamp=msg.header.stamp,
                frame_id=msg.header.frame_id, track_id=max(msg.track_id, 0),
                estimated=estimated))  # fmt: skip
        self._publish_diagnostics(msg, float(1e3 * state.fit_error[0]), None)

    def _estimated_vertices(self, msg: HandKeypoints) -> np.ndarray | None:
        """The message's mesh (V, 3) camera metres if it is this hand model's, else None
        (logged: a mesh of another topology cannot be fitted or drawn)."""
        try:
            vertices = vertices_from_msg(msg)
        except ValueError as exc:
            self.get_logger().error(str(exc), throttle_duration_sec=5.0)
            return None
        if vertices is None:
            return None
        if len(vertices) != self.stage.model.num_vertices or not np.isfinite(vertices).all():
            self.get_logger().warn(
                f"ignoring the estimator's mesh: {len(vertices)} vertices (finite: "
                f"{bool(np.isfinite(vertices).all())}), hand model "
                f"{self.stage.config.hand_model!r} has {self.stage.model.num_vertices}",
                throttle_duration_sec=5.0)  # fmt: skip
            return None
        return vertices

    def _publish_diagnostics(self, msg: HandKeypoints, fit_error_mm: float | None,
                             refused: str | None) -> None:  # fmt: skip
        latency = (self.get_clock().now() - Time.from_msg(msg.header.stamp)).nanoseconds * 1e-6
        values = {"ik_ms": self.last_ms, "rate_hz": self.rate.hz,
                  "latency_from_image_ms": latency,
                  "fit_error_mm": -1.0 if fit_error_mm is None else fit_error_mm,
                  "hands_refused": sum(self.rejected.values())}  # fmt: skip
        values.update({f"refused_{k}": v for k, v in sorted(self.rejected.items())})
        errors, level = self.guard.diagnostics()
        values.update(errors)
        if refused is not None:
            values["last_refusal"] = refused
        level = max(level, 1 if refused is not None else 0)
        message = f"hand refused: {refused}" if refused else "ok" if not errors else "errors"
        self.diag_pub.publish(diagnostic_array(self.get_clock().now().to_msg(), "ik", values,
                                               level=level, message=message))  # fmt: skip


def _rule(reason: str) -> str:
    """A short key for a refusal reason: its words before the first number."""
    words = []
    for word in reason.split():
        if any(c.isdigit() for c in word):
            break
        words.append(word)
    return "_".join(words[:3]) or "other"


def main(args: list[str] | None = None) -> None:
    spin_node(IKNode, args)


if __name__ == "__main__":
    main()
