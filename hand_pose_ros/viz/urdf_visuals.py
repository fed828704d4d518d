"""A URDF's visual geometry as triangle meshes in each link's frame (trimesh loader).

Every ``<link><visual>`` becomes one :class:`LinkMesh`: mesh files (STL, OBJ, GLB/glTF,
DAE with pycollada installed) are loaded with ``trimesh``; the primitives ``box``,
``cylinder`` and ``sphere`` are tessellated. The visual's ``<origin>`` and the mesh
``scale`` are applied, so the vertices are in the link's frame, metres. Colours come
from the URDF ``<material>`` (inline or named at the top level), else from the mesh
file's own material, else a neutral grey.

Meshes are decimated by vertex clustering (snap vertices to a cubic grid, merge those
in one cell, drop faces that collapse) until the robot has at most ``max_faces``
faces: no extra dependency, and at viewer resolution (a few hundred pixels for a
20 cm hand, i.e. about 1 mm per pixel) a 1-2 mm grid is invisible. Loaded robots are
cached per (URDF path, modification time, face budget).

Mesh paths: relative to the URDF's folder, ``file://`` absolute paths, and
``package://NAME/rest`` looked up as ``rest`` under the URDF's folder and its parents
(no ROS package index is needed). A visual whose file is missing or unreadable is
skipped with a warning naming it.
"""

from __future__ import annotations

import functools
import logging
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_log = logging.getLogger(__name__)

#: Colour of a visual without any material (RGB in [0, 1]).
DEFAULT_RGB = (0.72, 0.72, 0.75)
#: Segments around a cylinder; subdivisions of a sphere's icosahedron.
CYLINDER_SECTIONS = 24
SPHERE_SUBDIVISIONS = 1
#: Default face budget of one robot (all visuals together).
MAX_FACES = 6000


@dataclass(frozen=True)
class LinkMesh:
    """One visual of a link.

    Attributes:
        link: URDF link name (the frame the vertices are in).
        vertices: (V, 3) float64, link frame, metres (visual origin and scale applied).
        faces: (F, 3) int64 vertex indices, counter-clockwise seen from outside.
        face_rgb: (F, 3) float32 colours in [0, 1].
        source: the mesh file or the primitive (``"box"`` ...), for messages.
    """

    link: str
    vertices: np.ndarray
    faces: np.ndarray
    face_rgb: np.ndarray
    source: str


@dataclass(frozen=True)
class RobotVisuals:
    """All visuals of one URDF (what :func:`load_robot_visuals` returns).

    Attributes:
        urdf_path: the URDF.
        meshes: the loaded visuals (decimated to the face budget).
        skipped: visuals that could not be loaded, as messages.
        faces_before: faces before decimation (all meshes).
    """

    urdf_path: Path
    meshes: tuple[LinkMesh, ...]
    skipped: tuple[str, ...]
    faces_before: int

    @property
    def num_faces(self) -> int:
        """Faces after decimation."""
        return sum(len(m.faces) for m in self.meshes)

    @property
    def links(self) -> tuple[str, ...]:
        """Links with at least one visual, in URDF order (each once)."""
        return tuple(dict.fromkeys(m.link for m in self.meshes))


def origin_matrix(element: ET.Element | None) -> np.ndarray:
    """(4, 4) transform of a URDF ``<origin xyz rpy>`` (fixed-axis roll, pitch, yaw)."""
    out = np.eye(4)
    if element is None:
        return out
    xyz = [float(v) for v in element.get("xyz", "0 0 0").split()]
    r, p, y = (float(v) for v in element.get("rpy", "0 0 0").split())
    cr, sr, cp, sp, cy, sy = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    out[:3, :3] = rz @ ry @ rx
    out[:3, 3] = xyz
    return out


def resolve_mesh_path(filename: str, urdf_dir: Path) -> Path:
    """The file a URDF mesh ``filename`` names (may not exist; see the module docstring)."""
    if filename.startswith("file://"):
        return Path(filename.removeprefix("file://"))
    if filename.startswith("package://"):
        rest = Path(filename.removeprefix("package://"))
        inner = Path(*rest.parts[1:]) if len(rest.parts) > 1 else rest
        for base in (urdf_dir, *urdf_dir.parents):
            for candidate in (base / inner, base / rest):
                if candidate.is_file():
                    return candidate
        return urdf_dir / inner
    path = Path(filename)
    return path if path.is_absolute() else urdf_dir / path


def _material_colours(root: ET.Element) -> dict[str, tuple[float, float, float]]:
    colours = {}
    for material in root.findall("material"):
        colour = material.find("color")
        if material.get("name") and colour is not None and colour.get("rgba"):
            colours[material.get("name")] = tuple(float(v) for v in colour.get("rgba").split()[:3])
    return colours


def _visual_rgb(visual: ET.Element, named: dict) -> tuple[float, float, float] | None:
    material = visual.find("material")
    if material is None:
        return None
    colour = material.find("color")
    if colour is not None and colour.get("rgba"):
        return tuple(float(v) for v in colour.get("rgba").split()[:3])
    return named.get(material.get("name"))


def _primitive(geometry: ET.Element):
    """A trimesh for a ``box`` / ``cylinder`` / ``sphere`` element, or None."""
    import trimesh

    if (box := geometry.find("box")) is not None:
        return trimesh.creation.box(extents=[float(v) for v in box.get("size").split()]), "box"
    if (cyl := geometry.find("cylinder")) is not None:
        mesh = trimesh.creation.cylinder(radius=float(cyl.get("radius")),
                                         height=float(cyl.get("length")),
                                         sections=CYLINDER_SECTIONS)  # fmt: skip
        return mesh, "cylinder"
    if (sphere := geometry.find("sphere")) is not None:
        mesh = trimesh.creation.icosphere(SPHERE_SUBDIVISIONS, radius=float(sphere.get("radius")))
        return mesh, "sphere"
    return None


def _face_rgb(mesh) -> np.ndarray | None:
    """(F, 3) colours in [0, 1] from a trimesh's own visual, or None."""
    visual = getattr(mesh, "visual", None)
    if visual is None:
        return None
    try:
        if visual.kind == "texture":
            material = visual.material
            main = getattr(material, "main_color", None)
            if main is None:
                return None
            return np.tile(np.asarray(main[:3], np.float32) / 255.0, (len(mesh.faces), 1))
        if visual.kind in ("face", "vertex"):
            return np.asarray(visual.face_colors[:, :3], np.float32) / 255.0
    except (AttributeError, ValueError, IndexError):  # odd materials: use the default
        return None
    return None


def _load_mesh_file(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Vertices, faces and face colours (or None) of every geometry in a mesh file."""
    import trimesh

    scene = trimesh.load(str(path), force="scene")
    verts, faces, colours, offset = [], [], [], 0
    has_colour = True
    for geometry in scene.dump():  # node transforms applied
        if not hasattr(geometry, "faces") or len(geometry.faces) == 0:
            continue
        verts.append(np.asarray(geometry.vertices, float))
        faces.append(np.asarray(geometry.faces, np.int64) + offset)
        offset += len(geometry.vertices)
        rgb = _face_rgb(geometry)
        has_colour = has_colour and rgb is not None
        colours.append(rgb)
    if not faces:
        raise ValueError(f"{path}: no triangles")
    colour = np.concatenate(colours) if has_colour else None
    return np.concatenate(verts), np.concatenate(faces), colour


def parse_visual_meshes(
    urdf_path: str | Path, mesh_dir: str | Path | None = None
) -> tuple[list[LinkMesh], list[str]]:
    """Load every ``<visual>`` of a URDF, undecimated.

    Args:
        urdf_path: the URDF file.
        mesh_dir: folder relative mesh paths start from; None: the URDF's folder.

    Returns:
        meshes: one :class:`LinkMesh` per loaded visual, in URDF order.
        skipped: a message per visual that could not be loaded (missing file ...).
    """
    urdf_path = Path(urdf_path)
    base = Path(mesh_dir) if mesh_dir is not None else urdf_path.parent
    root = ET.parse(urdf_path).getroot()
    named = _material_colours(root)
    meshes, skipped = [], []
    for link in root.findall("link"):
        for visual in link.findall("visual"):
            geometry = visual.find("geometry")
            if geometry is None:
                continue
            pose = origin_matrix(visual.find("origin"))
            rgb = _visual_rgb(visual, named)
            colour = None
            if (tag := geometry.find("mesh")) is not None:
                path = resolve_mesh_path(tag.get("filename", ""), base)
                scale = np.array([float(v) for v in tag.get("scale", "1 1 1").split()])
                try:
                    verts, faces, colour = _load_mesh_file(path)
                except Exception as exc:  # a bad file skips one visual only
                    skipped.append(f"link {link.get('name')!r}: {path} ({type(exc).__name__}: "
                                   f"{exc})")  # fmt: skip
                    continue
                verts = verts * scale
                if np.prod(scale) < 0:  # a mirroring scale turns the winding inside out
                    faces = faces[:, ::-1]
                source = str(path)
            elif (made := _primitive(geometry)) is not None:
                mesh, source = made
                verts, faces = np.asarray(mesh.vertices, float), np.asarray(mesh.faces, np.int64)
            else:
                skipped.append(f"link {link.get('name')!r}: unknown geometry "
                               f"{[c.tag for c in geometry]}")  # fmt: skip
                continue
            verts = verts @ pose[:3, :3].T + pose[:3, 3]
            if rgb is not None or colour is None:
                colour = np.tile(np.asarray(rgb or DEFAULT_RGB, np.float32), (len(faces), 1))
            meshes.append(LinkMesh(link.get("name"), verts, faces, colour.astype(np.float32),
                                   source))  # fmt: skip
    return meshes, skipped


def cluster_decimate(mesh: LinkMesh, cell: float) -> LinkMesh:
    """Vertex-clustering decimation: vertices in one ``cell``-metre grid cube merge.

    Faces whose corners fall in fewer than three cells disappear; the rest keep their
    colour. Duplicate faces are removed.
    """
    if cell <= 0:
        return mesh
    keys = np.floor(mesh.vertices / cell).astype(np.int64)
    _, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    # Each cluster sits at its members' mean (not the cell corner): no grid staircase.
    counts = np.bincount(inverse)
    verts = np.stack(
        [np.bincount(inverse, mesh.vertices[:, c]) / counts for c in range(3)], axis=1
    )
    faces = inverse[mesh.faces]
    a, b, c = faces.T
    keep = (a != b) & (b != c) & (a != c)
    faces, rgb = faces[keep], mesh.face_rgb[keep]
    _, unique = np.unique(np.sort(faces, axis=1), axis=0, return_index=True)
    unique.sort()
    return LinkMesh(mesh.link, verts, faces[unique], rgb[unique], mesh.source)


def decimate_to_budget(meshes: list[LinkMesh], max_faces: int) -> list[LinkMesh]:
    """Decimate all meshes with one grid size, the finest (halving steps from the
    robot's size / 64) that brings the total to at most ``max_faces``."""
    total = sum(len(m.faces) for m in meshes)
    if total <= max_faces or not meshes:
        return meshes
    points = np.concatenate([m.vertices for m in meshes])
    diagonal = float(np.linalg.norm(points.max(0) - points.min(0)))
    cell = diagonal / 512.0
    while True:
        out = [cluster_decimate(m, cell) for m in meshes]
        if sum(len(m.faces) for m in out) <= max_faces or cell > diagonal / 16:
            return out
        cell *= 1.4


@functools.lru_cache(maxsize=8)
def _load_cached(urdf_path: Path, mtime_ns: int, max_faces: int,
                 mesh_dir: Path | None) -> RobotVisuals:  # fmt: skip
    meshes, skipped = parse_visual_meshes(urdf_path, mesh_dir)
    before = sum(len(m.faces) for m in meshes)
    meshes = decimate_to_budget(meshes, max_faces)
    for message in skipped:
        _log.warning("%s: visual skipped: %s", urdf_path.name, message)
    visuals = RobotVisuals(urdf_path, tuple(meshes), tuple(skipped), before)
    _log.info("%s: %d visuals, %d faces (%d before decimation)", urdf_path.name, len(meshes),
              visuals.num_faces, before)  # fmt: skip
    return visuals


def load_robot_visuals(urdf_path: str | Path, max_faces: int = MAX_FACES,
                       mesh_dir: str | Path | None = None) -> RobotVisuals:  # fmt: skip
    """The visual meshes of a URDF, decimated to ``max_faces``, cached per file version.

    ``mesh_dir``: folder relative mesh paths start from (None: the URDF's folder).

    Raises:
        ValueError: ``max_faces`` below 100.
        FileNotFoundError: no such URDF.
    """
    if max_faces < 100:
        raise ValueError(f"max_faces must be at least 100, got {max_faces}")
    path = Path(urdf_path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no URDF at {path}")
    mesh_dir = Path(mesh_dir).resolve() if mesh_dir is not None else None
    return _load_cached(path, path.stat().st_mtime_ns, int(max_faces), mesh_dir)
