"""The embedded demo: a synthetic hand performs a scripted sequence in front of a virtual camera.

No camera, GPU or download: the open hand model is posed through keyframes (open, fist,
open, pinch, open, point, then counting one to five), placed palm toward the camera with
a gentle wrist motion, and rendered into a 640x480 image with a software rasteriser. The
frame carries the ground-truth keypoints and mesh (camera optical frame), so the demo can
drive the IK and robot side with or without an image estimator.

With ``hands=2`` (bimanual teleop) a left hand joins the right one: the mirror image
(camera x -> -x) of a right hand running the same script half a pass later, with its own
wrist motion. The operator faces the camera, so the right hand is on the image's left
(``HAND_X_M``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from hand_ik.biomech import bio_kinematics_for
from hand_ik.frames import hand_root_frame
from hand_ik.hand_model import load_hand_model
from hand_ik.pose_sampler import keyframe

#: The scripted sequence: (keyframe name, label shown in the video).
DEMO_SCRIPT: tuple[tuple[str, str], ...] = (
    ("flat", "open"), ("fist", "fist"), ("flat", "open"), ("pinch", "pinch"), ("flat", "open"),
    ("point", "point"), ("point", "one"), ("victory", "two"), ("three", "three"),
    ("four", "four"), ("spread", "five"),
)  # fmt: skip


#: Track id of each side's hand (the estimator node's ids for estimators that do not track).
DEMO_TRACK_IDS: dict[str, int] = {"right": 0, "left": 1}
#: Wrist x in the camera frame, metres, per side with two hands (one hand: centred).
HAND_X_M: dict[str, float] = {"right": -0.085, "left": 0.085}
#: The left hand runs the script this fraction of a pass after the right one.
LEFT_PHASE = 0.5


@dataclass
class DemoHandTruth:
    """One hand of a demo frame: its ground truth (camera optical frame, metres)."""

    handedness: str
    track_id: int
    joints_cam: np.ndarray  # (21, 3)
    vertices_cam: np.ndarray  # (V, 3)
    uv: np.ndarray  # (21, 2) pixels
    label: str


@dataclass
class DemoFrame:
    """One synthetic camera frame with its ground truth (camera optical frame, metres).

    ``joints_cam``, ``vertices_cam``, ``uv``, ``handedness`` and ``label`` are the right
    hand's; ``hands`` holds every hand in the image (right first).
    """

    index: int
    stamp_s: float
    image: np.ndarray  # (H, W, 3) uint8 RGB
    K: np.ndarray  # (3, 3)
    joints_cam: np.ndarray  # (21, 3)
    vertices_cam: np.ndarray  # (V, 3)
    uv: np.ndarray  # (21, 2) pixels
    handedness: str
    label: str
    hands: tuple[DemoHandTruth, ...] = ()


def _smoothstep(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3.0 - 2.0 * x)


class DemoHand:
    """Scripted synthetic hand frames at ``fps``; endless (the script loops).

    Args:
        fps: frame rate of the stamps (the caller decides how fast to pull frames).
        size: image (width, height) in pixels.
        transition_s: time to move between keyframes; hold_s: time to stay at one.
        noise_m: Gaussian noise added to the published keypoints (0: exact), metres.
        seed: noise seed.
        hands: 1 (a right hand) or 2 (right and left, both moving).
    """

    def __init__(self, fps: float = 30.0, size: tuple[int, int] = (640, 480),
                 transition_s: float = 0.8, hold_s: float = 0.4, noise_m: float = 0.0,
                 seed: int = 0, hands: int = 1) -> None:  # fmt: skip
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        if hands not in (1, 2):
            raise ValueError(f"hands must be 1 or 2, got {hands}")
        self.fps = fps
        self.hands = hands
        self.width, self.height = size
        f = 0.9 * self.width
        self.K = np.array([[f, 0, self.width / 2], [0, f, self.height / 2], [0, 0, 1.0]])
        self.transition_s, self.hold_s = transition_s, hold_s
        self.noise_m = noise_m
        self.rng = np.random.default_rng(seed)
        self.model = load_hand_model("open")
        self.kinematics = bio_kinematics_for(self.model)
        self.faces = self.model.faces
        with torch.no_grad():
            rest = self.model().joints[0].double()
        rot_root, _ = hand_root_frame(rest)
        # Palm toward the camera, fingers up: hand x -> camera +x, y -> -y, z -> -z.
        desired = np.array([[1.0, 0, 0], [0, -1.0, 0], [0, 0, -1.0]])
        self._base_rotation = desired @ rot_root.numpy().T
        self._segment_s = transition_s + hold_s
        self.index = 0

    @property
    def period_s(self) -> float:
        """Duration of one pass through the script."""
        return self._segment_s * len(DEMO_SCRIPT)

    def bio_at(self, t: float) -> tuple[np.ndarray, str]:
        """(23,) DoF and the label of the scripted pose at time ``t`` seconds."""
        k = int(t // self._segment_s) % len(DEMO_SCRIPT)
        phase = (t % self._segment_s) / self.transition_s
        name_to, label = DEMO_SCRIPT[k]
        name_from = DEMO_SCRIPT[k - 1][0]
        w = _smoothstep(phase)
        return (1 - w) * keyframe(name_from) + w * keyframe(name_to), label

    def wrist_pose_at(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Model global rotation (3, 3) and wrist position (3,) in the camera frame."""
        import roma

        wobble = np.array([0.15 * math.sin(0.7 * t), 0.25 * math.sin(0.45 * t),
                           0.1 * math.sin(0.3 * t)])
        rotation = roma.rotvec_to_rotmat(torch.as_tensor(wobble)).numpy() @ self._base_rotation
        position = np.array([0.03 * math.sin(0.5 * t), 0.05 + 0.02 * math.sin(0.8 * t), 0.36])
        return rotation, position

    def _posed_hand(self, t: float, x_m: float) -> tuple[np.ndarray, np.ndarray, str]:
        """The right hand model at script time ``t``, its wrist moved to camera x ``x_m``
        (added to the scripted motion): (21, 3) joints, (V, 3) vertices, label."""
        import roma

        bio, label = self.bio_at(t)
        rotation, wrist = self.wrist_pose_at(t)
        wrist = wrist + np.array([x_m, 0.0, 0.0])
        with torch.no_grad():
            dtype = self.model.v_template.dtype
            rotvec = roma.rotmat_to_rotvec(torch.as_tensor(rotation, dtype=dtype))[None]
            pose = self.kinematics.bio_to_pose(torch.as_tensor(bio, dtype=dtype)[None])
            out = self.model(pose=pose, global_orient=rotvec)
        joints = out.joints[0].double().numpy()
        verts = out.vertices[0].double().numpy()
        shift = wrist - joints[0]
        return joints + shift, verts + shift, label

    def frame_at(self, index: int) -> DemoFrame:
        """The frame with this index (stamp ``index / fps``)."""
        t = index / self.fps
        posed = {"right": self._posed_hand(t, HAND_X_M["right"] if self.hands == 2 else 0.0)}
        if self.hands == 2:
            # A left hand is the mirror image of a right one: pose a right hand on the
            # mirrored side, half a pass later, and reflect it (camera x -> -x).
            joints, verts, label = self._posed_hand(t + LEFT_PHASE * self.period_s,
                                                    -HAND_X_M["left"])  # fmt: skip
            mirror = np.array([-1.0, 1.0, 1.0])
            posed["left"] = (joints * mirror, verts * mirror, label)
        image = self.render(*(verts for _, verts, _ in posed.values()))
        hands = []
        for side, (joints, verts, label) in posed.items():
            uv = self.project(joints)
            if self.noise_m > 0:
                joints = joints + self.rng.normal(0, self.noise_m, joints.shape)
            hands.append(DemoHandTruth(side, DEMO_TRACK_IDS[side], joints, verts, uv, label))
        right = hands[0]
        return DemoFrame(index, t, image, self.K.copy(), right.joints_cam, right.vertices_cam,
                         right.uv, "right", right.label, tuple(hands))  # fmt: skip

    def __iter__(self):
        return self

    def __next__(self) -> DemoFrame:
        frame = self.frame_at(self.index)
        self.index += 1
        return frame

    def project(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) camera-frame points -> (N, 2) pixels."""
        p = points @ self.K.T
        return p[:, :2] / p[:, 2:3]

    def render(self, *vertices_cam: np.ndarray) -> np.ndarray:
        """Shaded hands ((V, 3) camera-frame vertices each) over a soft background,
        (H, W, 3) uint8 RGB (painter's algorithm over all hands' triangles)."""
        starts = np.cumsum([0, *(len(v) for v in vertices_cam[:-1])])
        faces = np.concatenate([self.faces + start for start in starts])
        vertices_cam = np.concatenate(vertices_cam)
        h, w = self.height, self.width
        yy = np.linspace(0, 1, h)[:, None, None]
        image = (np.array([70, 80, 96]) * (1 - yy) + np.array([140, 140, 150]) * yy)
        image = np.broadcast_to(image, (h, w, 3)).astype(np.uint8).copy()
        px = self.project(vertices_cam)
        tri = vertices_cam[faces]
        normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-15)
        view = tri.mean(1)
        view /= np.linalg.norm(view, axis=1, keepdims=True)
        light = np.abs((normals * view).sum(1))
        skin = np.array([224.0, 172.0, 140.0])
        order = np.argsort(-tri[:, :, 2].mean(1))
        pts = np.round(px[faces] * 16).astype(np.int32)
        for f in order:
            colour = skin * (0.35 + 0.65 * light[f])
            cv2.fillConvexPoly(image, pts[f], colour.tolist(), lineType=cv2.LINE_AA, shift=4)
        return image
