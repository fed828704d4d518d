"""The hand tracking graph: full frame -> tracked hands with 21 keypoints and metric 3D.

Stage I (only when needed): the palm detector on the letterboxed frame, anchor decoding,
weighted NMS, a rotated hand ROI per palm. Stage II (every frame, all hands in one
batch): the landmark network on each ROI's upright crop, its 21 landmarks mapped back to
the frame, its world landmarks (metres, hand-centred) turned into camera axes and placed
in the camera frame by the 2D landmarks and the intrinsics, and the next frame's ROI from
the landmarks (tracking). A track ends when the network's hand presence drops; the palm
detector runs again when fewer than ``max_hands`` hands are tracked.

Networks are plain callables ``(B, 3, S, S) float32 RGB in [0, 1] -> outputs``
(:mod:`hand_pose_ros.handnets`), so every backend (ONNX Runtime CPU / CUDA, TensorRT,
torch) runs the same code here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hand_pose_ros.detection.postprocess import box_iou, to_batch
from hand_pose_ros.estimation.detections import KeypointDetection, world_to_camera
from hand_pose_ros.handnets import network_runner
from hand_pose_ros.handtrack.config import HandTrackConfig
from hand_pose_ros.handtrack.palm_anchors import AnchorSpec, ssd_anchor_centres
from hand_pose_ros.handtrack.palm_decode import decode_palms, weighted_nms
from hand_pose_ros.handtrack.rois import (
    RotatedRect,
    crop_rect,
    crop_to_frame,
    letterbox,
    rect_from_landmarks,
    rect_from_palm,
)

Network = Callable[[np.ndarray], tuple[np.ndarray, ...]]

#: The landmark network's handedness output is the probability that the hand it sees in
#: an unmirrored crop is a right hand (checked on the real right-hand video and on our
#: left / right renders: test_handtrack_graph.py, docs/handtrack.md).
HANDEDNESS_MEANS_RIGHT = True


@dataclass
class Track:
    """One followed hand."""

    track_id: int
    rect: RotatedRect
    """ROI for the next landmark pass, frame pixels."""
    p_right: float
    """Voted probability that the seen hand is a right hand."""
    age: int = 0
    """Frames this hand has been followed."""


@dataclass
class StageTimes:
    """Milliseconds spent in the last frame's stages (0 when a stage did not run)."""

    palm_ms: float = 0.0
    landmark_ms: float = 0.0
    palm_runs: int = 0


@dataclass
class _LandmarkResult:
    uv: np.ndarray
    world: np.ndarray
    presence: float
    p_right: float
    extra: tuple[np.ndarray, ...] = ()
    """This crop's rows of the network's outputs after the first four (a landmark network
    with a head: :mod:`hand_pose_ros.handtrack.mesh_graph`)."""
    crop_matrix: np.ndarray | None = None
    """(2, 3) affine frame pixels -> crop pixels of this crop."""


def _average_mirrored(landmarks: np.ndarray, world: np.ndarray, n: int,
                      size: int) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Landmark outputs of ``n`` crops followed by the same crops mirrored -> their means.

    The mirrored crops' answers are mirrored back first: landmark x -> ``size - 1 - x``
    (crop pixels; the mirror of pixel column j is column size - 1 - j), world x -> -x
    (metres, crop axes); landmark y and z, world y and z unchanged.
    """
    lm_m, w_m = landmarks[n:].copy(), world[n:].copy()
    lm_m[..., 0] = size - 1 - lm_m[..., 0]
    w_m[..., 0] = -w_m[..., 0]
    return 0.5 * (landmarks[:n] + lm_m), 0.5 * (world[:n] + w_m)


def rect_bounds_iou(a: RotatedRect, b: RotatedRect) -> float:
    """IoU of the axis-aligned bounds of two rotated rects."""
    ca, cb = a.corners(), b.corners()
    bounds = [np.concatenate([c.min(0), c.max(0)]) for c in (ca, cb)]
    return float(box_iou(bounds[0], bounds[1])[0, 0])


class HandTrackGraph:
    """Full-frame hands -> :class:`KeypointDetection` per hand (camera frame, metres).

    Args:
        palm_net: (1, 3, 192, 192) -> (regressors (1, 2016, 18), logits (1, 2016)).
        landmark_net: (B, 3, 224, 224) -> (landmarks (B, 21, 3) input px, presence (B,),
            handedness (B,), world landmarks (B, 21, 3) metres).
        config: tracking options.
    """

    def __init__(self, palm_net: Network, landmark_net: Network,
                 config: HandTrackConfig | None = None, palm_input_size: int = 192,
                 landmark_input_size: int = 224) -> None:  # fmt: skip
        self.cfg = config or HandTrackConfig()
        self.palm_net, self.landmark_net = palm_net, landmark_net
        self.palm_size, self.landmark_size = palm_input_size, landmark_input_size
        self.anchors = ssd_anchor_centres(AnchorSpec(input_size=palm_input_size))
        self.times = StageTimes()
        self.reset()

    def reset(self) -> None:
        """Forget every track (a new video, a camera switch)."""
        self.tracks: list[Track] = []
        self._next_id = 0
        self._frame = 0
        self._last_search = -(10**9)

    # -- stage I -----------------------------------------------------------------------
    def detect_palms(self, rgb: np.ndarray) -> list:
        """Palms in a full frame, best first (frame pixels)."""
        image, scale, pad = letterbox(rgb, self.palm_size)
        start = time.perf_counter()
        regressors, logits = self.palm_net(to_batch([image]))[:2]
        self.times.palm_ms += (time.perf_counter() - start) * 1e3
        self.times.palm_runs += 1
        palms = decode_palms(regressors[0], logits.reshape(-1), self.anchors, self.palm_size,
                             self.cfg.min_detection_score)  # fmt: skip
        palms = weighted_nms(palms, self.cfg.nms_iou)
        for p in palms:  # input -> frame pixels
            p.box = (p.box.reshape(2, 2) - pad).reshape(4) / scale
            p.keypoints = (p.keypoints - pad) / scale
        return palms

    def _search(self, rgb: np.ndarray) -> list[Track]:
        """New tracks for palms that are not already tracked hands."""
        self._last_search = self._frame
        new = []
        for palm in self.detect_palms(rgb):
            if len(self.tracks) + len(new) >= self.cfg.max_hands:
                break
            rect = rect_from_palm(palm, self.cfg.palm_roi_scale, self.cfg.palm_roi_shift)
            if not rect.is_valid():
                continue
            taken = [t.rect for t in self.tracks] + [t.rect for t in new]
            if any(rect_bounds_iou(rect, r) > self.cfg.same_hand_iou for r in taken):
                continue
            new.append(Track(self._next_id, rect, p_right=0.5))
            self._next_id += 1
        return new

    def detect_hands(self, rgb: np.ndarray) -> list[tuple[float, np.ndarray, float, float]]:
        """Static detection, no tracking: every palm above the score threshold and one
        landmark pass on its ROI. Returns (palm score, (21, 2) landmarks in frame pixels,
        presence, P(right seen)) per palm, best palm first (benchmarks, tests)."""
        palms = self.detect_palms(rgb)
        rects = [rect_from_palm(p, self.cfg.palm_roi_scale, self.cfg.palm_roi_shift)
                 for p in palms]  # fmt: skip
        keep = [i for i, r in enumerate(rects) if r.is_valid()]
        if not keep:
            return []
        results = self._landmarks(rgb, [rects[i] for i in keep])
        return [(palms[i].score, r.uv, r.presence, r.p_right)
                for i, r in zip(keep, results, strict=True)]  # fmt: skip

    # -- stage II ----------------------------------------------------------------------
    def _landmarks(self, rgb: np.ndarray, rects: list[RotatedRect]) -> list[_LandmarkResult]:
        s = self.landmark_size
        crops, mats = zip(*(crop_rect(rgb, r, s) for r in rects), strict=True)
        batch = list(crops)
        if self.cfg.mirror_average:
            batch += [c[:, ::-1] for c in crops]
        start = time.perf_counter()
        out = self.landmark_net(to_batch(batch))
        self.times.landmark_ms += (time.perf_counter() - start) * 1e3
        landmarks, presence, handedness, world = (np.asarray(o, np.float64) for o in out[:4])
        if self.cfg.mirror_average:
            landmarks, world = _average_mirrored(landmarks, world, len(crops), s)
        results = []
        for i, (rect, mat) in enumerate(zip(rects, mats, strict=True)):
            uv = crop_to_frame(landmarks[i, :, :2], mat)
            c, s_ = np.cos(rect.rotation), np.sin(rect.rotation)
            w = world[i].copy()
            w[:, 0], w[:, 1] = c * world[i, :, 0] - s_ * world[i, :, 1], \
                s_ * world[i, :, 0] + c * world[i, :, 1]  # fmt: skip
            p = float(handedness.reshape(-1)[i])
            results.append(_LandmarkResult(uv, w, float(presence.reshape(-1)[i]),
                                           p if HANDEDNESS_MEANS_RIGHT else 1.0 - p,
                                           tuple(np.asarray(o)[i] for o in out[4:]),
                                           mat))  # fmt: skip
        return results

    def _seen(self, res: _LandmarkResult) -> bool:
        """The landmark network found a hand in this ROI (and gave finite points)."""
        return bool(res.presence >= self.cfg.min_presence and np.isfinite(res.uv).all()
                    and np.isfinite(res.world).all())  # fmt: skip

    def _refine(self, rgb: np.ndarray, tracks: list[Track]) -> dict[int, _LandmarkResult]:
        """``roi_refinements`` for new tracks: each pass on the ROI from the last pass's
        landmarks, kept while the network still sees the hand there (else the last ROI
        that it saw the hand in stays). Returns track id -> the landmarks on its final ROI
        (for ``_follow``: no pass is run twice); empty with no refinements."""
        if not tracks or self.cfg.roi_refinements == 0:
            return {}
        known = dict(zip((t.track_id for t in tracks),
                         self._landmarks(rgb, [t.rect for t in tracks]), strict=True))  # fmt: skip
        active = list(tracks)
        for _ in range(self.cfg.roi_refinements):
            candidates = []
            for track in active:
                res = known[track.track_id]
                if not self._seen(res):
                    continue  # no hand seen: _follow drops it
                rect = rect_from_landmarks(res.uv, self.cfg.landmark_roi_scale,
                                           self.cfg.landmark_roi_shift)  # fmt: skip
                if rect.is_valid():
                    candidates.append((track, rect))
            if not candidates:
                break
            results = self._landmarks(rgb, [rect for _, rect in candidates])
            active = []
            for (track, rect), res in zip(candidates, results, strict=True):
                if self._seen(res):
                    track.rect, known[track.track_id] = rect, res
                    active.append(track)
        return known

    def _follow(self, rgb: np.ndarray, tracks: list[Track],
                known: dict[int, _LandmarkResult] | None = None,
                ) -> list[tuple[Track, _LandmarkResult]]:  # fmt: skip
        """Landmarks for ``tracks`` (``known``: track id -> landmarks already run on its
        ROI); the ones whose hand is still there, with their new ROI."""
        known = dict(known or {})
        todo = [t for t in tracks if t.track_id not in known]
        if todo:
            results = self._landmarks(rgb, [t.rect for t in todo])
            known.update(zip((t.track_id for t in todo), results, strict=True))
        kept = []
        for track in tracks:
            res = known[track.track_id]
            if not self._seen(res):
                continue
            rect = rect_from_landmarks(res.uv, self.cfg.landmark_roi_scale,
                                       self.cfg.landmark_roi_shift)  # fmt: skip
            if not rect.is_valid():
                continue
            m = self.cfg.handedness_momentum if track.age else 0.0
            track.p_right = m * track.p_right + (1.0 - m) * res.p_right
            track.rect = rect
            track.age += 1
            kept.append((track, res))
        return kept

    def _dedupe(self, found: list[tuple[Track, _LandmarkResult]]):
        """Two tracks that converged on one hand: keep the older."""
        found = sorted(found, key=lambda tr: -tr[0].age)
        out = []
        for track, res in found:
            if all(rect_bounds_iou(track.rect, t.rect) <= self.cfg.same_hand_iou
                   for t, _ in out):  # fmt: skip
                out.append((track, res))
        return out

    # -- the estimator interface -------------------------------------------------------
    def __call__(self, rgb: np.ndarray, K: np.ndarray) -> list[KeypointDetection]:
        """Hands in an (H, W, 3) uint8 RGB image with intrinsics K (3, 3)."""
        if not (isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8 and rgb.ndim == 3
                and rgb.shape[2] == 3 and min(rgb.shape[:2]) >= 16):  # fmt: skip
            raise ValueError("expected an (H, W, 3) uint8 RGB image of at least 16 x 16 px, got "
                             f"{getattr(rgb, 'dtype', type(rgb))} {getattr(rgb, 'shape', '')}")
        K = np.asarray(K, np.float64)
        if K.shape != (3, 3) or not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
            raise ValueError(f"K: finite (3, 3) intrinsics with positive focal lengths, got {K}")
        self.times = StageTimes()
        cfg = self.cfg
        searched = False
        new: list[Track] = []
        if len(self.tracks) < cfg.max_hands and (
                not self.tracks or self._frame - self._last_search >= cfg.search_every):
            new, searched = self._search(rgb), True
        found = self._follow(rgb, self.tracks + new, self._refine(rgb, new))
        lost = len(found) < len(self.tracks) + len(new)
        if lost and not searched and len(found) < cfg.max_hands:
            # A hand slipped out of its ROI: look again now rather than drop a frame.
            self.tracks = [t for t, _ in found]
            again = self._search(rgb)
            found += self._follow(rgb, again, self._refine(rgb, again))
        found = self._dedupe(found)
        self.tracks = [t for t, _ in found]
        self._frame += 1
        out = [self._detection(t, r, K) for t, r in found]
        return self._pick_side(out)

    def _detection(self, track: Track, res: _LandmarkResult, K: np.ndarray) -> KeypointDetection:
        seen_right = track.p_right >= 0.5
        side = "right" if seen_right != self.cfg.mirrored_input else "left"
        points = world_to_camera(res.world, res.uv, K, self.cfg.camera_points)
        return KeypointDetection(points, res.uv, side, res.presence,
                                 track_id=track.track_id)  # fmt: skip

    def _pick_side(self, hands: list[KeypointDetection]) -> list[KeypointDetection]:
        side = self.cfg.hand_side
        if side == "auto" or not hands:
            return hands
        same = [h for h in hands if h.handedness == side]
        best = max(same or hands, key=lambda h: h.score)
        best.handedness = side
        return [best]


def create_hand_tracker(config: HandTrackConfig | None = None, backend: str = "onnx",
                        device: str = "cpu", threads: int = 1) -> HandTrackGraph:  # fmt: skip
    """The graph on the real-trained networks converted from the installed wheel (first use
    converts and caches them; :mod:`hand_pose_ros.handnets`)."""
    cfg = config or HandTrackConfig()
    palm = network_runner(cfg.palm_model, backend=backend, device=device, threads=threads)
    landmark = network_runner(cfg.landmark_model, backend=backend, device=device,
                              threads=threads)  # fmt: skip
    return HandTrackGraph(palm, landmark, cfg, palm.input_size, landmark.input_size)
